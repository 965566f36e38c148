"""Resume of ``hfagp train``: a killed training continues from ``resume.pt`` to the same weights as an uninterrupted run."""

from __future__ import annotations

import pytest
import torch
from test_training import make_subject, paths_for, tiny_settings

from hfagp.errors import HfagpError


@pytest.fixture(scope="module")
def subject(tmp_path_factory) -> dict:
    return make_subject(tmp_path_factory.mktemp("subject"))


def _train(settings, paths, on_step=None):
    from hfagp.avatar.distributed import setup_distributed
    from hfagp.avatar.training import Trainer

    trainer = Trainer(settings, paths, setup_distributed("cpu"), on_step=on_step)
    return trainer, trainer.run()


def _assert_same_state(a, b):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    differing = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not differing, f"parameters differ after resume: {differing[:5]}"
    ea, eb = a.ema.state_dict()["shadow"], b.ema.state_dict()["shadow"]
    assert ea.keys() == eb.keys() and all(torch.equal(ea[k], eb[k]) for k in ea), "the weight average differs after resume"
    oa, ob = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert len(oa["param_groups"]) == len(ob["param_groups"])
    for key, state in oa["state"].items():
        for name, value in state.items():
            assert torch.equal(value, ob["state"][key][name]), (key, name)


class Interrupt(Exception):
    pass


@pytest.mark.parametrize(
    "kind, how, stop_at, overrides",
    [
        # SIGTERM/Ctrl-C path: resume.pt written at the stop; the generator joined before the stop; the ray
        # distortion term (the demo's) joins at step 3, after the restart
        ("expression", "signal", 2, dict(tune_iter=2, distortion_weight=0.3, distortion_from=0.5)),
        # a crash between checkpoints: resumes from the last periodic resume.pt (step 4); the audio
        # smoothing starts and the generator joins after the restart
        ("audio", "crash", 5, dict(tune_iter=5, smoothing_start=4, checkpoint_every=2)),
        ("rgb", "signal", 2, dict(tune_iter=4, batch_size=3)),
    ],
)
def test_resume_reproduces_an_uninterrupted_run(subject, tmp_path, kind, how, stop_at, overrides):
    torch.set_num_threads(2)
    settings = tiny_settings(kind, steps=6, **overrides)
    straight, straight_metrics = _train(settings, paths_for(subject, tmp_path / "straight"))

    paths = paths_for(subject, tmp_path / "resumed")

    def interrupt(trainer, step):
        if step == stop_at:
            if how == "signal":
                trainer.stop_requested = True  # what the SIGTERM/SIGINT handler does
            else:
                raise Interrupt("killed")

    with pytest.raises(KeyboardInterrupt if how == "signal" else Interrupt):
        _train(settings, paths, on_step=interrupt)
    assert paths.resume.exists() and not paths.out_dir.joinpath("checkpoint.pt").exists()
    saved = torch.load(paths.resume, map_location="cpu", weights_only=False)
    assert saved["step"] == (stop_at if how == "signal" else 4)

    resumed, metrics = _train(settings, paths)
    assert resumed.resumed and resumed.step == 6
    _assert_same_state(straight, resumed)
    assert not paths.resume.exists() and paths.out_dir.joinpath("checkpoint.pt").exists()
    assert metrics["test_psnr"] == straight_metrics["test_psnr"]
    assert metrics["steps"] == 6 and metrics["generator_tuned"] == straight_metrics["generator_tuned"]


def test_resume_with_other_settings_is_refused(subject, tmp_path):
    settings = tiny_settings("expression", steps=4, tune_iter=10)
    paths = paths_for(subject, tmp_path / "run")

    def stop(trainer, step):
        trainer.stop_requested = True

    with pytest.raises(KeyboardInterrupt):
        _train(settings, paths, on_step=stop)
    with pytest.raises(HfagpError, match="batch_size"):
        _train(tiny_settings("expression", steps=4, tune_iter=10, batch_size=1), paths)
    paths.resume.write_bytes(b"garbage")
    with pytest.raises(HfagpError, match="delete it"):
        _train(settings, paths)


def test_sigterm_writes_the_resume_file(subject, tmp_path):
    """A real SIGTERM (to this process) stops training after the current step with resume.pt written."""
    import os
    import signal

    settings = tiny_settings("expression", steps=6, tune_iter=10)
    paths = paths_for(subject, tmp_path / "run")
    previous = signal.getsignal(signal.SIGTERM)

    def kill(trainer, step):
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(KeyboardInterrupt):
        _train(settings, paths, on_step=kill)
    assert signal.getsignal(signal.SIGTERM) is previous  # handlers restored
    assert torch.load(paths.resume, map_location="cpu", weights_only=False)["step"] == 2
    trainer, metrics = _train(settings, paths)
    assert metrics["steps"] == 6 and not paths.resume.exists()
