"""hfagp paper-table on hand-made metrics.json summaries: exact rows, footnotes, CSV and older summaries."""

from __future__ import annotations

import csv
import json

import pytest

from hfagp.errors import HfagpError
from hfagp.evaluate.paper_table import (
    FOOTNOTE_CSIM,
    FOOTNOTE_DEMO,
    FOOTNOTE_LANDMARKS,
    FOOTNOTE_LPIPS,
    FOOTNOTE_NIQE,
    LEGEND,
    run_paper_table,
)


def stats(mean, std, count=10, frames=None):
    data = {"mean": mean, "std": std, "count": count, "nonfinite": 0}
    if frames is not None:
        data.update(frames=frames, missing={} if count == frames else {"no face found in the render": frames - count})
    return data


def summary(subject, driver, lpips=True, demo=False, niqe=None, new_keys=True, novel_faces=None):
    """A metrics.json summary; ``new_keys=False`` gives one written before face PSNR, lip and novel faces existed."""
    data = {
        "subject": subject,
        "driver": driver,
        "frames": 10,
        "generator_prior": "random-init demo generator (no prior)" if demo else "EG3D ffhqrebalanced512-128.pkl",
        "demo_generator": demo,
        "lpips_backbone": "alex" if lpips else "n/a: backbone weights absent",
        "metrics": {
            "psnr": stats(30.123, 1.5),
            "ssim": stats(0.91234, 0.01),
            "lpips": stats(0.08765, 0.005) if lpips else {"mean": None, "std": None, "count": 0, "na": "absent"},
            "l1": stats(0.02, 0.003),
            "akd": stats(1.234, 0.5),
        },
        "niqe": niqe,
    }
    if new_keys:
        data["metrics"]["psnr_face"] = stats(27.456, 2.25)
        data["lip_opening_correlation"] = {"value": 0.81234, "frames": 10, "reason": None}
        data["novel_faces"] = novel_faces
    return data


def write(tmp_path, items):
    paths = []
    for k, item in enumerate(items):
        path = tmp_path / f"m{k}.json"
        path.write_text(json.dumps(item))
        paths.append(path)
    return paths


def test_rows_and_footnotes(tmp_path):
    paths = write(tmp_path, [
        summary("obama", "rgb", lpips=False, demo=True, niqe=stats(9.5, 0.25),
                novel_faces={"detected": 22, "frames": 23, "fraction": 22 / 23}),
        summary("may", "audio"),
    ])
    run_paper_table(paths, tmp_path / "t.md", tmp_path / "t.csv")
    lines = (tmp_path / "t.md").read_text().splitlines()
    header = ("| Subject | Driver | PSNR ↑ | Face PSNR ↑ | SSIM ↑ | LPIPS ↓ | L1 ↓ | AKD ↓ | LMD ↓ | CSIM ↑ | Lip corr. ↑ | "
              "NIQE (novel) ↓ | Novel faces ↑ | Frames | Protocol | Generator prior | LPIPS backbone |")
    start = lines.index(header)
    assert lines[start - 2] == "Test frames: mean ± std per subject and driver. " + LEGEND
    assert lines[start + 2] == ("| may | audio | 30.12 ± 1.50 | 27.46 ± 2.25 | 0.9123 ± 0.0100 | 0.0877 ± 0.0050 | "
                                "0.0200 ± 0.0030 | 1.23 ± 0.50 | - | - | 0.812 | - | - | 10 | - | "
                                "EG3D ffhqrebalanced512-128.pkl | alex |")
    assert lines[start + 3] == ("| obama | rgb | 30.12 ± 1.50 | 27.46 ± 2.25 | 0.9123 ± 0.0100 | n/a | 0.0200 ± 0.0030 | "
                                "1.23 ± 0.50 | - | - | 0.812 | 9.50 ± 0.25 | 0.96 (22/23) | 10 | - | "
                                "random-init demo generator (no prior) * | n/a: backbone weights absent |")
    assert lines[start + 4:] == ["", FOOTNOTE_DEMO, FOOTNOTE_LPIPS, FOOTNOTE_NIQE, FOOTNOTE_LANDMARKS]
    with open(tmp_path / "t.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["subject"], r["driver"]) for r in rows] == [("may", "audio"), ("obama", "rgb")]
    assert float(rows[0]["psnr_mean"]) == 30.123 and float(rows[0]["lpips_std"]) == 0.005
    assert rows[0]["niqe_mean"] == "" and float(rows[1]["niqe_std"]) == 0.25
    assert rows[1]["lpips_mean"] == "" and rows[1]["demo_generator"] == "True"
    assert rows[1]["lpips_backbone"] == "n/a: backbone weights absent" and rows[0]["frames"] == "10"
    assert float(rows[0]["psnr_face_mean"]) == 27.456 and float(rows[0]["psnr_face_std"]) == 2.25
    assert float(rows[0]["lip_corr"]) == 0.81234 and rows[0]["novel_face_fraction"] == ""
    assert float(rows[1]["novel_face_fraction"]) == pytest.approx(22 / 23)


def test_new_columns_absent_or_undefined(tmp_path):
    """A metrics.json from before face PSNR / lip / novel faces shows '-'; an undefined value shows 'n/a'."""
    undefined = summary("may", "rgb", novel_faces={"detected": 0, "frames": 0, "fraction": None})
    undefined["metrics"]["psnr_face"] = {"mean": None, "std": None, "count": 0, "nonfinite": 3}
    undefined["lip_opening_correlation"] = {"value": None, "frames": 2, "reason": "only 2 test frames"}
    paths = write(tmp_path, [summary("obama", "rgb", niqe=stats(9.5, 0.25), new_keys=False), undefined])
    run_paper_table(paths, tmp_path / "t.md", tmp_path / "t.csv")
    lines = (tmp_path / "t.md").read_text().splitlines()
    may = next(line for line in lines if line.startswith("| may |")).split(" | ")
    obama = next(line for line in lines if line.startswith("| obama |")).split(" | ")
    assert [obama[3], obama[10], obama[11], obama[12]] == ["-", "-", "9.50 ± 0.25", "-"]
    assert [may[3], may[10], may[11], may[12]] == ["n/a", "n/a", "-", "n/a"]
    with open(tmp_path / "t.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        assert row["psnr_face_mean"] == row["lip_corr"] == row["novel_face_fraction"] == ""
    assert float(rows[1]["psnr_mean"]) == 30.123


def test_clean_table_has_only_the_landmark_footnote(tmp_path):
    run_paper_table(write(tmp_path, [summary("may", "rgb")]), tmp_path / "t.md")
    text = (tmp_path / "t.md").read_text()
    assert text.endswith("| EG3D ffhqrebalanced512-128.pkl | alex |\n\n" + FOOTNOTE_LANDMARKS + "\n")
    assert not (tmp_path / "t.csv").exists()


def test_counts_protocol_and_methods(tmp_path):
    """(n/N) where a metric is missing on some frames; the protocol column; per-metric tool, version and protocol."""
    methods = {key: {"tool": f"{key} tool", "version": "numpy==2.0", "protocol": "512 px, RGB [0,1], full frame"}
               for key in ("psnr", "ssim", "lmd", "csim")}
    full = summary("may", "rgb")
    full["metrics"].update(akd=stats(4.5, 1.0, 7, 10), lmd=stats(2.25, 0.5, 7, 10), csim=stats(0.9, 0.01, 7, 10),
                           psnr=stats(30.123, 1.5, 10, 10))
    full["protocol"] = {"resolution": 512, "region": "full", "color": "rgb", "text": "512 px, RGB [0,1], full frame"}
    full["methods"] = methods
    head = summary("may", "audio")
    head["protocol"] = {"resolution": 512, "region": "head", "color": "rgb", "text": "512 px, RGB [0,1], head only"}
    head["methods"] = {**methods, "psnr": {**methods["psnr"], "protocol": "512 px, RGB [0,1], head only"}}
    run_paper_table(write(tmp_path, [full, head]), tmp_path / "t.md", tmp_path / "t.csv")
    text = (tmp_path / "t.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| may | rgb |")).split(" | ")
    assert row[2] == "30.12 ± 1.50"  # all 10 frames: no count shown
    assert row[7:10] == ["4.50 ± 1.00 (7/10)", "2.25 ± 0.50 (7/10)", "0.900 ± 0.010 (7/10)"]
    assert row[14] == "512 px, RGB [0,1], full frame"
    assert FOOTNOTE_CSIM in text and FOOTNOTE_LANDMARKS in text
    assert "- **psnr** (may/rgb): psnr tool; numpy==2.0; 512 px, RGB [0,1], full frame" in text
    assert "- **psnr** (may/audio): psnr tool; numpy==2.0; 512 px, RGB [0,1], head only" in text
    assert "- **lmd**: lmd tool; numpy==2.0; 512 px, RGB [0,1], full frame" in text
    with open(tmp_path / "t.csv", newline="") as fh:
        rows = {r["driver"]: r for r in csv.DictReader(fh)}
    assert rows["rgb"]["akd_n"] == "7" and rows["rgb"]["psnr_n"] == "10" and rows["rgb"]["lmd_mean"] == "2.25"
    assert rows["audio"]["protocol"] == "512 px, RGB [0,1], head only"
    assert rows["audio"]["psnr_method"] == "psnr tool; numpy==2.0; 512 px, RGB [0,1], head only"
    assert rows["audio"]["lpips_method"] == ""


def test_errors(tmp_path):
    with pytest.raises(HfagpError, match="both hold"):
        run_paper_table(write(tmp_path, [summary("a", "rgb"), summary("a", "rgb")]), tmp_path / "t.md")
    with pytest.raises(HfagpError, match="not found"):
        run_paper_table([tmp_path / "absent.json"], tmp_path / "t.md")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(HfagpError, match="not a metrics.json"):
        run_paper_table([bad], tmp_path / "t.md")
