"""``hfagp train`` under torchrun: 2 CPU processes with gloo stay in sync (DistributedDataParallel)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
from test_training import make_subject

WORKER = textwrap.dedent(
    """
    import hashlib, json, os, sys
    import torch
    from hfagp.avatar.distributed import setup_distributed
    from hfagp.avatar.training import Trainer
    from hfagp.avatar.settings import TrainPaths, TrainSettings
    import torch.distributed as dist

    subject, out, dump = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    torch.set_num_threads(1)
    ctx = setup_distributed("cpu")
    settings = TrainSettings(kind="expression", steps=4, tune_iter=2, lr=1e-3, batch_size=1, resolution=32,
                             lpips_weight=0.0, checkpoint_every=3, sample_every=100, log_every=1, seed=0)
    trainer = Trainer(settings, TrainPaths(output=out, **subject), ctx)

    def digest(model):
        h = hashlib.sha256()
        for name, value in sorted(model.state_dict().items()):
            h.update(name.encode()); h.update(value.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    seen = []
    def on_step(tr, step):
        seen.append(step)
    trainer.on_step = on_step
    before = digest(trainer.model)
    before_driver = digest(trainer.model.driver)
    trainer.run()
    result = {"rank": ctx.rank, "world": ctx.world, "before": before, "after": digest(trainer.model),
              "before_driver": before_driver, "after_driver": digest(trainer.model.driver),
              "after_generator": digest(trainer.model.generator), "tuning": trainer.tuning, "steps": seen,
              "wrapped": type(trainer.ddp).__name__}
    with open(os.path.join(dump, f"rank{ctx.rank}.json"), "w") as fh:
        json.dump(result, fh)
    dist.destroy_process_group()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_stay_in_sync(tmp_path):
    subject = make_subject(tmp_path / "subject")
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    dump = tmp_path / "dump"
    dump.mkdir()
    out = tmp_path / "driver" / "checkpoint.pt"
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), str(worker), json.dumps(subject), str(out), str(dump),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 and "gloo" in proc.stderr.lower() and "not" in proc.stderr.lower() and "available" in proc.stderr.lower():
        pytest.skip("torch.distributed gloo backend not available")
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = [json.loads((dump / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in results] == [2, 2]
    assert all(r["wrapped"] == "DistributedDataParallel" for r in results)
    assert all(r["tuning"] and r["steps"] == [1, 2, 3, 4] for r in results)
    # same weights on both ranks (driver, subspace and the fine-tuned generator), and they moved
    assert results[0]["after"] == results[1]["after"]
    assert results[0]["after_generator"] == results[1]["after_generator"]
    assert results[0]["before"] == results[1]["before"]
    assert results[0]["after"] != results[0]["before"]
    assert results[0]["after_driver"] != results[0]["before_driver"]
    # only rank 0 wrote the outputs; the training finished
    assert out.exists() and (out.parent / "metrics.json").exists() and not (out.parent / "resume.pt").exists()
    metrics = json.loads((out.parent / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 4
