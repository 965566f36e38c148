"""``hfagp paper-table``: the results table (one row per subject and driver) from ``metrics.json`` files.

Each row gives PSNR, face PSNR (inside the convex hull of the ground truth's
dlib 68 landmarks), SSIM, LPIPS, L1, AKD, LMD (mouth) and CSIM (identity) over
the test frames as ``mean ± std`` (population std), followed by ``(n/N)``
whenever a metric could not be computed on every test frame (no face found,
say: the reasons are in each metrics.json and per frame in metrics.parquet;
missing frames are never zero-filled); the inner-lip opening correlation
(Pearson, render vs ground truth, over the test frames; ``n/a`` when
undefined), NIQE over the novel views (``-`` when none were rendered, ``n/a``
when they were too small), the fraction of novel-view frames in which dlib
finds a face (with the counts), the number of test frames, the evaluation
protocol (:mod:`hfagp.evaluate.protocol`), the generator prior and the LPIPS
backbone. A ``metrics.json`` written before a column existed shows ``-``
there. LPIPS is ``n/a`` when the backbone weights were absent (never a number
from an untrained network).

Under the Markdown table, a **Metrics** list says, for every metric, the tool
and package versions that computed it and its protocol (from the summaries'
``methods``; one entry per distinct method), and footnotes flag rows made with
the random-init demo generator, absent LPIPS weights, the landmark detector
(dlib, where the field uses FAN) and the identity embedding (dlib's, not
ArcFace). The CSV has plain numbers (mean, std and the count n in separate
columns, empty where absent), the same text columns and one ``<metric>_method``
column per metric (tool; version; protocol). Rows are sorted by subject, driver.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from hfagp.errors import HfagpError
from hfagp.io import atomic
from hfagp.io.artifacts import read_json
from hfagp.logs import get_logger

log = get_logger("paper_table")

# (key in metrics.json "metrics", column title, decimals)
COLUMNS = (
    ("psnr", "PSNR ↑", 2),
    ("psnr_face", "Face PSNR ↑", 2),
    ("ssim", "SSIM ↑", 4),
    ("lpips", "LPIPS ↓", 4),
    ("l1", "L1 ↓", 4),
    ("akd", "AKD ↓", 2),
    ("lmd", "LMD ↓", 2),
    ("csim", "CSIM ↑", 3),
)
NIQE_TITLE, NIQE_DECIMALS = "NIQE (novel) ↓", 2
LIP_TITLE, LIP_DECIMALS = "Lip corr. ↑", 3
NOVEL_FACES_TITLE = "Novel faces ↑"
HEADER = (
    "Subject", "Driver", *(title for _, title, _ in COLUMNS), LIP_TITLE, NIQE_TITLE, NOVEL_FACES_TITLE,
    "Frames", "Protocol", "Generator prior", "LPIPS backbone",
)
METHOD_KEYS = ("psnr", "psnr_face", "ssim", "lpips", "l1", "akd", "lmd", "csim", "niqe")
CSV_HEADER = (
    "subject", "driver",
    *(f"{key}_{stat}" for key, _, _ in COLUMNS for stat in ("mean", "std", "n")),
    "lip_corr", "niqe_mean", "niqe_std", "niqe_n", "novel_face_fraction", "frames", "protocol", "generator_prior",
    "demo_generator", "lpips_backbone", *(f"{key}_method" for key in METHOD_KEYS),
)
LEGEND = (
    "(n/N): the metric exists for n of the N test frames (no face found in the others; reasons in metrics.json). "
    "Face PSNR: inside the convex hull of the ground truth's dlib 68 landmarks. LMD: mouth landmarks 48-67, each "
    "set mean-centred, mean distance in pixels at the evaluation size. CSIM: cosine similarity of identity "
    "embeddings of render and ground truth. Lip corr.: Pearson correlation of the render's and the ground truth's "
    "inner-lip opening over the test frames. Novel faces: fraction (count) of novel-view frames in which dlib "
    "finds a face."
)
DEMO_MARK = "*"
FOOTNOTE_DEMO = (
    f"{DEMO_MARK} random-init demo generator (no prior): an untrained network; these numbers check the "
    "pipeline and say nothing about HFA-GP's quality."
)
FOOTNOTE_LPIPS = (
    "LPIPS n/a: the backbone weights (torchvision alexnet-owt-7be5be79.pth / vgg16-397923af.pth) were absent; "
    "no number from an untrained backbone is reported. Give them with `lpips.weights` in config.yaml."
)
FOOTNOTE_NIQE = (
    "NIQE: basicsr's `calculate_niqe` (MATLAB's niqe, its pristine model; crop_border 0, Y channel), computed on "
    "the novel views at the render's own size; n/a below 192x192 px (NIQE needs 2x2 blocks of 96 px)."
)
FOOTNOTE_LANDMARKS = (
    "AKD, LMD, face PSNR and lip opening use dlib's 68-point landmarks; the field's papers use face-alignment's "
    "FAN, which cannot be installed offline: the numbers are comparable in protocol, not digit for digit."
)
FOOTNOTE_CSIM = (
    "CSIM: dlib's face-recognition ResNet embedding (128-d), not ArcFace as in most EG3D-based reenactment "
    "papers: comparable in protocol, not digit for digit."
)


def load_summary(path: str | Path) -> dict:
    """Read one ``metrics.json`` of ``hfagp evaluate``."""
    path = Path(path)
    data = read_json(path, "metrics summary", "run `hfagp evaluate` for that subject/driver first")
    try:
        for key in ("subject", "driver", "metrics", "frames", "generator_prior", "lpips_backbone"):
            data[key]
    except (ValueError, KeyError, TypeError) as err:
        raise HfagpError(f"{path} is not a metrics.json of `hfagp evaluate` ({err!r}); rerun the evaluate stage") from err
    data["_path"] = str(path)
    return data


def mean_std(stats: dict | None, decimals: int, absent: str = "n/a") -> str:
    """``"mean ± std"`` with ``decimals`` places, or ``absent`` when there is no mean."""
    if not stats or stats.get("mean") is None:
        return absent
    return f"{stats['mean']:.{decimals}f} ± {stats['std']:.{decimals}f}"


def counted(stats: dict, cell: str) -> str:
    """``cell`` followed by ``(n/N)`` when the metric exists for fewer than all N frames (N known)."""
    frames, count = stats.get("frames"), stats.get("count")
    if frames is None or count is None or count >= frames or cell == "n/a" and not count and "na" in stats:
        return cell
    return f"{cell} ({count}/{frames})"


def metric_cell(metrics: dict, key: str, decimals: int) -> str:
    """One metric column: ``-`` when the summary predates it, ``n/a`` without a value, else mean ± std, (n/N)."""
    if key not in metrics:
        return "-"
    return counted(metrics[key], mean_std(metrics[key], decimals))


def protocol_cell(summary: dict) -> str:
    """The evaluation protocol of a row (``-`` for a summary written before protocols were recorded)."""
    protocol = summary.get("protocol")
    return protocol.get("text", "-") if isinstance(protocol, dict) else "-"


def method_text(method: dict | None) -> str:
    """``tool; version; protocol`` of one metric (empty when unknown)."""
    if not method:
        return ""
    return "; ".join(str(method[key]) for key in ("tool", "version", "protocol") if method.get(key))


def lip_cell(summary: dict) -> str:
    """Lip-opening correlation: ``-`` when absent from the summary, ``n/a`` when undefined."""
    lip = summary.get("lip_opening_correlation")
    if lip is None:
        return "-"
    return "n/a" if lip.get("value") is None else f"{lip['value']:.{LIP_DECIMALS}f}"


def novel_faces_cell(summary: dict) -> str:
    """Novel-view faces: ``fraction (detected/frames)``, ``-`` without novel views (or an older summary)."""
    faces = summary.get("novel_faces")
    if faces is None:
        return "-"
    if faces.get("fraction") is None:
        return "n/a"
    return f"{faces['fraction']:.2f} ({faces['detected']}/{faces['frames']})"


def niqe_cell(niqe: dict | None) -> str:
    """NIQE column: ``-`` without novel views, ``n/a`` when they had none, else mean ± std."""
    if niqe is None:
        return "-"
    return counted(niqe, mean_std(niqe, NIQE_DECIMALS))


def markdown_row(summary: dict) -> list[str]:
    """The cells of one Markdown row."""
    metrics = summary["metrics"]
    prior = summary["generator_prior"] + (f" {DEMO_MARK}" if summary.get("demo_generator") else "")
    return [
        summary["subject"],
        summary["driver"],
        *(metric_cell(metrics, key, decimals) for key, _, decimals in COLUMNS),
        lip_cell(summary),
        niqe_cell(summary.get("niqe")),
        novel_faces_cell(summary),
        str(summary["frames"]),
        protocol_cell(summary),
        prior,
        summary["lpips_backbone"],
    ]


def _count(stats: dict | None):
    value = None if not stats else stats.get("count")
    return "" if value is None else int(value)


def _number(stats: dict | None, key: str):
    value = None if not stats else stats.get(key)
    return "" if value is None else repr(float(value))


def csv_row(summary: dict) -> list:
    """The cells of one CSV row (numbers as plain values, empty where absent)."""
    metrics = summary["metrics"]
    numbers = [_count(metrics.get(key)) if stat == "n" else _number(metrics.get(key), stat)
               for key, _, _ in COLUMNS for stat in ("mean", "std", "n")]
    niqe = summary.get("niqe")
    lip = _number(summary.get("lip_opening_correlation"), "value")
    faces = _number(summary.get("novel_faces"), "fraction")
    methods = summary.get("methods") or {}
    return [
        summary["subject"], summary["driver"], *numbers, lip, _number(niqe, "mean"), _number(niqe, "std"),
        _count(niqe), faces, int(summary["frames"]), protocol_cell(summary), summary["generator_prior"],
        bool(summary.get("demo_generator")), summary["lpips_backbone"],
        *(method_text(methods.get(key)) for key in METHOD_KEYS),
    ]


def sorted_summaries(summaries: list[dict]) -> list[dict]:
    """Sort by (subject, driver); two files for the same pair are an error."""
    seen: dict[tuple[str, str], str] = {}
    for summary in summaries:
        key = (summary["subject"], summary["driver"])
        if key in seen:
            raise HfagpError(
                f"{summary.get('_path')} and {seen[key]} both hold subject {key[0]!r}, driver {key[1]!r}; "
                "pass one metrics.json per subject and driver"
            )
        seen[key] = summary.get("_path", "?")
    return sorted(summaries, key=lambda s: (s["subject"], s["driver"]))


def footnotes(summaries: list[dict]) -> list[str]:
    """Footnote lines for the Markdown table."""
    notes = []
    if any(s.get("demo_generator") for s in summaries):
        notes.append(FOOTNOTE_DEMO)
    if any(s["metrics"].get("lpips", {}).get("mean") is None for s in summaries):
        notes.append(FOOTNOTE_LPIPS)
    if any(s.get("niqe") is not None for s in summaries):
        notes.append(FOOTNOTE_NIQE)
    if any("lmd" in s["metrics"] or "akd" in s["metrics"] for s in summaries):
        notes.append(FOOTNOTE_LANDMARKS)
    if any("csim" in s["metrics"] for s in summaries):
        notes.append(FOOTNOTE_CSIM)
    return notes


def method_lines(summaries: list[dict]) -> list[str]:
    """The Markdown "Metrics" list: per metric, each distinct (tool; version; protocol) and the rows using it."""
    lines = []
    for key in METHOD_KEYS:
        users: dict[str, list[str]] = {}
        for summary in summaries:
            text = method_text((summary.get("methods") or {}).get(key))
            if text:
                users.setdefault(text, []).append(f"{summary['subject']}/{summary['driver']}")
        for text, rows in users.items():
            scope = "" if len(users) == 1 else f" ({', '.join(rows)})"
            lines.append(f"- **{key}**{scope}: {text}")
    return lines


def markdown_table(summaries: list[dict]) -> str:
    """The whole Markdown document: title, table, footnotes."""
    lines = ["# Results", "", "Test frames: mean ± std per subject and driver. " + LEGEND, ""]
    lines.append("| " + " | ".join(HEADER) + " |")
    lines.append("|" + "|".join("---" for _ in HEADER) + "|")
    for summary in summaries:
        lines.append("| " + " | ".join(markdown_row(summary)) + " |")
    notes = footnotes(summaries)
    if notes:
        lines.append("")
        lines += notes
    methods = method_lines(summaries)
    if methods:
        lines += ["", "## Metrics: tool, version, protocol", ""] + methods
    return "\n".join(lines) + "\n"


def csv_table(summaries: list[dict]) -> str:
    """The CSV text (header + one row per summary)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for summary in summaries:
        writer.writerow(csv_row(summary))
    return buffer.getvalue()


def run_paper_table(inputs: list[str | Path], output_md: str | Path, output_csv: str | Path | None = None) -> list[dict]:
    """Read the summaries and write the Markdown (and CSV) table atomically."""
    if not inputs:
        raise HfagpError("no metrics.json given; run `hfagp evaluate` first and pass its metrics.json files")
    summaries = sorted_summaries([load_summary(path) for path in inputs])
    atomic.write_text(output_md, markdown_table(summaries))
    if output_csv is not None:
        atomic.write_text(output_csv, csv_table(summaries))
    log.info("paper table: %d rows -> %s%s", len(summaries), output_md, f", {output_csv}" if output_csv else "")
    return summaries
