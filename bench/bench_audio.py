"""Benchmark of the audio-feature stage on CPU (default 2 threads).

Measures, for one minute of synthetic 16 kHz speech-like audio (chirps, AM
tones and noise), seconds per minute of audio for:

- the front end (int16 -> MFCC -> stride 2 -> context -> whitening),
- the full-size DeepSpeech v0.1.0 network (H = C = 2048, n_hidden_3 = 4096,
  random weights of the real shapes) with each recurrent implementation
  (``loop``: this project's per-step loop; ``torch``: torch.nn.LSTM's kernel),
- optionally (``--pb``) writing a full-size 490 MB frozen graph (real node
  names and shapes, random weights) and timing its TF-free parse + load
  (``pb`` row: seconds to load, not per minute of audio).

Each measurement runs in a fresh subprocess so that its peak RSS
(``ru_maxrss``) is its own. Usage::

    .venv/bin/python bench/bench_audio.py [--threads 2] [--seconds 60] [--repeat 2] [--pb]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def synthetic_audio(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Speech-like int16 test signal: syllable-rate AM over chirps and harmonics, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) ** 2
    x = 6000 * envelope * voiced + 300 * rng.standard_normal(t.size)
    return np.clip(x, -32768, 32767).astype(np.int16)


def child(task: str, threads: int, seconds: float, repeat: int, pb: str | None) -> dict:
    import torch

    torch.set_num_threads(threads)
    from hfagp.audio.mfcc import deepspeech_input

    signal = synthetic_audio(seconds)
    result: dict = {"task": task, "threads": threads, "audio_s": seconds}
    if task == "frontend":
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            deepspeech_input(signal, 16000)
            times.append(time.perf_counter() - start)
        result["seconds"] = min(times)
    elif task.startswith("network"):
        from hfagp.audio.deepspeech import DeepSpeechV010

        _, _, x = deepspeech_input(signal, 16000)
        x = x.astype(np.float32)
        net = DeepSpeechV010.random(2048, 2048)
        net.rnn_impl = task.split(":")[1]
        net(x[:20])  # warm-up
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - start)
        result["seconds"] = min(times)
        result["steps"] = int(x.shape[0])
    elif task == "writepb":
        start = time.perf_counter()
        write_full_pb(Path(pb))
        result["seconds"] = time.perf_counter() - start
        result["bytes"] = Path(pb).stat().st_size
    elif task == "pb":
        from hfagp.audio.deepspeech import load_deepspeech

        start = time.perf_counter()
        net, info = load_deepspeech(pb)
        result["seconds"] = time.perf_counter() - start
        result["sizes"] = {k: info[k] for k in ("n_hidden", "n_cell", "n_hidden_3")}
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM; ru_maxrss would include the parent's peak across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_full_pb(path: Path) -> None:
    """A frozen-graph file with the real v0.1.0 node names and shapes (random weights), ~490 MB."""
    from hfagp.audio.graphdef import build_graph

    rng = np.random.default_rng(0)
    H, C = 2048, 2048

    def w(*shape):
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(0.01)

    consts = {"h1": w(494, H), "b1": w(H), "h2": w(H, H), "b2": w(H), "h3": w(H, 2 * C), "b3": w(2 * C),
              "h5": w(2 * C, H), "b5": w(H), "h6": w(H, 29), "b6": w(29)}
    for d in ("fw", "bw"):
        consts[f"bidirectional_rnn/{d}/basic_lstm_cell/kernel"] = w(3 * C, 4 * C)
        consts[f"bidirectional_rnn/{d}/basic_lstm_cell/bias"] = w(4 * C)
    graph = build_graph(consts, {"input_node": "Placeholder", "input_lengths": "Placeholder", "logits": "Reshape"})
    path.write_bytes(graph.SerializeToString())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--impl", nargs="+", default=["torch", "loop"], choices=["torch", "loop"])
    parser.add_argument("--pb", action="store_true", help="also time parsing a full-size 490 MB .pb")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--pb-path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.threads, args.seconds, args.repeat, args.pb_path)))
        return 0
    tasks = ["frontend"] + [f"network:{impl}" for impl in args.impl]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        pb_path = Path(tmp) / "full_random_v010.pb"
        if args.pb:
            tasks += ["writepb", "pb"]
        for task in tasks:
            cmd = [sys.executable, __file__, "--child", task, "--threads", str(args.threads),
                   "--seconds", str(args.seconds), "--repeat", str(args.repeat), "--pb-path", str(pb_path)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    print(f"audio: {args.seconds:.0f} s synthetic, {args.threads} torch threads, best of {args.repeat}")
    print(f"{'task':<16} {'s/run':>8} {'s per min audio':>16} {'x real time':>12} {'peak RSS MB':>12}")
    for r in rows:
        timed = not r["task"].endswith("pb")
        per_min = r["seconds"] * 60.0 / args.seconds if timed else float("nan")
        speed = args.seconds / r["seconds"] if timed else float("nan")
        print(f"{r['task']:<16} {r['seconds']:>8.2f} {per_min:>16.2f} {speed:>12.1f} {r['peak_rss_mb']:>12.0f}")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
