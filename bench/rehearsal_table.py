"""The per-stage table of a Snakemake run: seconds and peak memory (RSS) of every job, from its benchmark file.

Usage::

    .venv/bin/python bench/rehearsal_table.py rehearsal          # after `make rehearsal`
    .venv/bin/python bench/rehearsal_table.py .                  # after `make demo`

Every rule of the workflow has a ``benchmark:`` file (``results/<subject>/benchmarks/<job>.tsv``,
``results/benchmarks/<job>.tsv``) in which Snakemake records the job's wall seconds (``s``) and the peak
resident memory of its process tree (``max_rss``, MB). This prints them as a Markdown table, jobs in the
order they finished, with the sum of the job seconds and the largest peak, and writes the same table to
``<dir>/stages.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def stage_table(workdir: Path) -> pd.DataFrame:
    """One row per benchmark file under ``workdir/results``: job, subject, seconds, peak RSS (MB)."""
    rows = []
    for path in sorted((workdir / "results").glob("**/benchmarks/*.tsv")):
        data = pd.read_csv(path, sep="\t")
        subject = path.parent.parent.name if path.parent.parent.name != "results" else "-"
        rss = pd.to_numeric(data["max_rss"], errors="coerce").max()
        rows.append({"job": path.stem, "subject": subject, "seconds": float(data["s"].max()),
                     "peak_rss_mb": None if pd.isna(rss) else float(rss), "finished": path.stat().st_mtime})
    if not rows:
        raise SystemExit(f"no benchmark files under {workdir / 'results'}; run the workflow there first")
    return pd.DataFrame(rows).sort_values("finished").drop(columns="finished").reset_index(drop=True)


def markdown(table: pd.DataFrame) -> str:
    lines = ["| job | subject | seconds | peak RSS (MB) |", "|---|---|---:|---:|"]
    for row in table.itertuples():
        rss = "-" if row.peak_rss_mb is None or pd.isna(row.peak_rss_mb) else f"{row.peak_rss_mb:.0f}"
        lines.append(f"| {row.job} | {row.subject} | {row.seconds:.1f} | {rss} |")
    lines.append(f"| **all jobs** | | **{table.seconds.sum():.1f}** | **{table.peak_rss_mb.max():.0f}** |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdir", type=Path, help="the directory Snakemake ran in (holds results/)")
    args = parser.parse_args(argv)
    text = markdown(stage_table(args.workdir))
    (args.workdir / "stages.md").write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
