"""The README's picture of a subject's avatars: ground truth beside each driver's test renders and yaw sweep.

    python bench/demo_figure.py results/demo -o docs/demo_avatars.jpg [--columns 8]   (.png or .jpg)

Rows: the ground-truth test crops, then for each trained driver its reenactment
of the same test frames (at the tracked cameras) and its yaw sweep (-30 to +30
degrees), each tile captioned with whether dlib (the evaluation's detector)
finds a face in it (from the evaluate stage's metrics.parquet). Every render is
the generator's own image; nothing is pasted or blended.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

TILE = 128


def tiles(folder: Path, names: list[str]) -> list[np.ndarray]:
    import cv2

    from hfagp.io.images import read_rgb

    return [cv2.resize(read_rgb(folder / name), (TILE, TILE), interpolation=cv2.INTER_AREA) for name in names]


def label(tile: np.ndarray, text: str, found: bool | None = None) -> np.ndarray:
    import cv2

    tile = tile.copy()
    cv2.rectangle(tile, (0, 0), (TILE - 1, 13), (0, 0, 0), -1)
    colour = (255, 255, 255) if found is None else ((90, 230, 90) if found else (240, 80, 80))
    cv2.putText(tile, text, (3, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.33, colour, 1, cv2.LINE_AA)
    return tile


def figure(subject: Path, columns: int = 8) -> np.ndarray:
    import pandas as pd

    from hfagp.io.tables import read_split

    test = read_split(subject / "split.json")["test"]
    pick = [test[int(i)] for i in np.linspace(0, len(test) - 1, min(columns, len(test))).round()]
    names = [f"{f:06d}.png" for f in pick]
    rows = [[label(t, f"ground truth #{f}") for t, f in zip(tiles(subject / "crops", names), pick)]]
    for driver in ("rgb", "expression", "audio"):
        folder = subject / "render" / driver
        if not (folder / "metrics.parquet").exists():
            continue
        table = pd.read_parquet(folder / "metrics.parquet")
        test_face = dict(zip(table[table.set == "test"].frame, table[table.set == "test"].face_render))
        rows.append([label(t, f"{driver} #{f}", bool(test_face.get(f))) for t, f in zip(tiles(folder / "reenact" / "frames", names), pick)])
        novel = sorted(p.name for p in (folder / "novel_yaw" / "frames").glob("*.png"))
        chosen = [int(i) for i in np.linspace(0, len(novel) - 1, len(pick)).round()]
        novel_face = table[table.set == "novel"].face_render.tolist()
        yaws = np.linspace(-30, 30, len(novel))
        rows.append([
            label(t, f"{driver} yaw {yaws[i]:+.0f}", bool(novel_face[i]) if i < len(novel_face) else None)
            for t, i in zip(tiles(folder / "novel_yaw" / "frames", [novel[i] for i in chosen]), chosen)
        ])
    return np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("subject", type=Path, help="results/<subject>")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--columns", type=int, default=8)
    args = parser.parse_args()
    import cv2

    from hfagp.io import atomic
    from hfagp.io.images import write_png

    image = figure(args.subject, args.columns)
    if args.output.suffix.lower() in (".jpg", ".jpeg"):  # small enough to commit beside the README
        ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])
        atomic.write_bytes(args.output, data.tobytes())
    else:
        write_png(args.output, image)
    print(args.output)


if __name__ == "__main__":
    main()
