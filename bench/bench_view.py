"""Benchmark the live viewer (``hfagp view``): frames/s of a trained avatar as the browser receives them.

Usage::

    .venv/bin/python bench/bench_view.py results/demo/driver/expression/checkpoint.pt
    .venv/bin/python bench/bench_view.py CHECKPOINT --seconds 10 --screenshot docs/viewer.png

1. ``render``: :meth:`ViewerModel.render` alone (one deterministic frame, batch 1) at each neural rendering
   resolution the viewer offers.
2. ``live``: the viewer serving a headless Debian chromium (selenium), the avatar scrubbed through the
   subject's frames as fast as it renders (each new frame is requested once the last one was sent), at the
   full resolution, with the ground truth beside: frames delivered per second, browser on the same cores;
   once with the viewer's tab in front (chromium draws WebGL in software here, competing for the CPU) and
   once in the background (nothing drawn: what the server delivers to a browser that draws on its GPU).
   Skipped, saying why, without chromium / chromium-driver.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import time_calls  # noqa: E402

WINDOW = "1200,720"


def bench_render(model) -> dict:
    from hfagp.evaluate.view_camera import orbit_label, orbit_of_label
    from hfagp.evaluate.view_model import nrr_choices

    label = orbit_label(orbit_of_label(model.labels[0]))
    out = {}
    for nrr in nrr_choices(model.full_nrr):
        times = time_calls(lambda: model.render(model.frame_weights[0], label, nrr), repeat=10)
        out[nrr] = 1.0 / (sum(times) / len(times))
    return out


def bench_live(model, seconds: float, screenshot: str | None, hidden: bool = False) -> dict | str:
    from pathlib import Path as P

    if not (P("/usr/bin/chromium").exists() and P("/usr/bin/chromedriver").exists()):
        return "skipped: needs Debian's chromium and chromium-driver"
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    from hfagp.evaluate.view import Viewer

    viewer = Viewer(model, "127.0.0.1", _free_port())
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=" + WINDOW,
                     "--enable-unsafe-swiftshader", "--use-angle=swiftshader"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(viewer.url)
        while not viewer.sessions or next(iter(viewer.sessions.values())).renders == 0:
            time.sleep(0.1)
        session = next(iter(viewer.sessions.values()))
        time.sleep(1.0)
        if screenshot:
            from selenium.webdriver.common.by import By

            for button in driver.find_elements(By.CSS_SELECTOR, "button[class*='closeButton']"):
                button.click()  # the "software WebGL" notice of a GPU-less headless browser
            session._set_frame(len(model.frames) // 3)
            time.sleep(2.0)
            driver.save_screenshot(screenshot)
        if hidden:  # a blank tab in front: the viewer's tab stops drawing WebGL but still receives every frame
            driver.switch_to.new_window("tab")
        stop = threading.Event()

        def scrub():  # the next frame as soon as the last was sent
            index, seen = 1, session.renders
            session._set_frame(index)
            while not stop.is_set():
                if session.renders != seen:
                    seen = session.renders
                    index = (index + 1) % len(model.frames)
                    session._set_frame(index)
                time.sleep(0.005)

        thread = threading.Thread(target=scrub, daemon=True)
        start_renders, start = session.renders, time.perf_counter()
        thread.start()
        time.sleep(seconds)
        stop.set()
        thread.join()
        delivered = session.renders - start_renders
        return {"frames_per_s": delivered / (time.perf_counter() - start), "frames": delivered,
                "neural_rendering": int(session.quality.value), "image": f"{model.resolution} px + ground truth"}
    finally:
        driver.quit()
        viewer.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--screenshot", default=None, help="save the browser's view here (PNG)")
    args = parser.parse_args()

    import logging

    import torch

    from hfagp.evaluate.view_model import SubjectFiles, ViewerModel

    logging.getLogger("hfagp").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    model = ViewerModel(args.checkpoint, SubjectFiles.beside(args.checkpoint))
    print(f"{model.kind} avatar, {model.resolution} px, {len(model.frames)} frames, {args.threads} threads")
    for nrr, fps in bench_render(model).items():
        print(f"render only, neural rendering {nrr}: {fps:.1f} frames/s")
    for hidden in (False, True):
        live = bench_live(model, args.seconds, args.screenshot if not hidden else None, hidden)
        if isinstance(live, str):
            print(f"live view: {live}")
            break
        where = ("tab in the background (no WebGL drawing: the server's rate)" if hidden else
                 "tab in front, drawing with software WebGL on the same cores")
        print(f"live view, {where}; scrubbing, neural rendering {live['neural_rendering']}, {live['image']}: "
              f"{live['frames_per_s']:.1f} frames/s ({live['frames']} frames)")


if __name__ == "__main__":
    main()
