"""``hfagp view`` (issue 28): the live viewer, driven from a real headless browser.

Chromium and its driver come from Debian (``chromium``, ``chromium-driver``), installed here with apt-get
when absent, as tests/test_slurm.py installs SLURM; selenium talks to them. Nothing downloads a browser, and
viser serves the web client prebuilt in its wheel (checked below). Without root or apt the browser tests
skip, saying why; the others still run.
"""

from __future__ import annotations

import io
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT
from debian import apt_install
from test_artifact_readers import _payload
from test_training import make_subject, paths_for, tiny_settings

from hfagp.errors import HfagpError

ARTIFACTS = REPO_ROOT / "results" / "test_artifacts"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def avatar(tmp_path_factory) -> dict:
    """A tiny trained expression avatar (demo generator, 6 steps) and its subject's files."""
    from hfagp.avatar.training import train

    root = tmp_path_factory.mktemp("view_subject")
    subject = make_subject(root)
    out = root / "driver" / "expression"
    train(tiny_settings("expression"), paths_for(subject, out))
    return {"checkpoint": out / "checkpoint.pt", "root": root}


@pytest.fixture(scope="module")
def model(avatar):
    from hfagp.evaluate.view_model import SubjectFiles, ViewerModel

    return ViewerModel(avatar["checkpoint"], SubjectFiles.beside(avatar["checkpoint"]))


def test_model_renders_deterministically_and_follows_its_inputs(model):
    from hfagp.eg3d import camera
    from hfagp.evaluate.view_camera import DEFAULT_DISTANCE, Orbit, orbit_label

    assert model.kind == "expression" and len(model.frames) == 8 and model.dim == 4
    label = orbit_label(Orbit(0.0, 0.0, DEFAULT_DISTANCE))
    first = model.render(model.frame_weights[0], label)
    assert first.shape == (128, 128, 3) and first.dtype == np.uint8
    assert np.array_equal(first, model.render(model.frame_weights[0], label))  # deterministic
    assert not np.array_equal(first, model.render(model.frame_weights[5], label))  # the latent matters
    assert not np.array_equal(first, model.render(model.frame_weights[0], orbit_label(Orbit(25.0, 0.0, DEFAULT_DISTANCE))))
    assert model.render(model.frame_weights[0], label, nrr=16).shape == (128, 128, 3)
    assert model.generator.neural_rendering_resolution == model.full_nrr  # a low-resolution frame changes nothing
    # The expression sliders go through the driver: the frame's own coefficients give the frame's weights.
    np.testing.assert_allclose(model.weights_of_expression(model.expressions[3]), model.frame_weights[3], atol=1e-6)
    # The render stage's image of a frame (same avatar, same camera) is what the viewer shows for it.
    from hfagp.evaluate.render import render_frames

    stage = render_frames(model.avatar, model.signals[:1], model.labels[:1], model.smooth, "cpu")[0]
    shown = model.render(model.frame_weights[0], model.labels[0])
    assert np.abs(stage.astype(int) - shown).max() <= 1  # the weights come from a batch of frames: last-bit rounding
    assert camera.CAMERA_PIVOT.shape == (3,)


def test_audio_playback_weights_are_the_frames_own(tmp_path):
    """An audio avatar driven by its own track gives each frame the weights training saw."""
    from hfagp.avatar.training import train
    from hfagp.evaluate.view_model import SubjectFiles, ViewerModel

    subject = make_subject(tmp_path)
    out = tmp_path / "driver" / "audio"
    train(tiny_settings("audio", steps=2, tune_iter=1), paths_for(subject, out))
    model = ViewerModel(out / "checkpoint.pt", SubjectFiles.beside(out / "checkpoint.pt"))
    features = np.load(subject["audio_features"])
    weights = model.playback_weights(features)
    np.testing.assert_allclose(weights[model.frames], model.frame_weights, atol=1e-6)
    with pytest.raises(HfagpError, match=r"\(N, 16, 29\)"):
        model.playback_weights(features[:, :8])
    # The viewer's playback: the track goes to the browser (viser-audio), its rows drive the frames.
    from scipy.io import wavfile

    from hfagp.evaluate.view import Viewer

    wav = tmp_path / "audio.wav"
    wavfile.write(wav, 16000, (0.1 * np.sin(np.arange(16000) / 5.0)).astype(np.float32))
    viewer = Viewer(model, "127.0.0.1", free_port(), (wav, Path(subject["audio_features"]), True))
    try:
        assert viewer.playback.clip.duration == pytest.approx(1.0)
        np.testing.assert_allclose(viewer.playback.weights, weights)
        assert viewer.playback.frame_of_row == {frame: i for i, frame in enumerate(model.frames)}
    finally:
        viewer.stop()


# -- the command line: errors before any server, Ctrl-C ------------------------------------------------------
def _hfagp_view(*args: str, preexec_fn=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hfagp", "view", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=REPO_ROOT, preexec_fn=preexec_fn)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on ``port`` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def test_missing_and_crafted_checkpoints_stop_before_a_server_starts(tmp_path):
    port = free_port()
    missing = _hfagp_view(str(tmp_path / "driver" / "x" / "checkpoint.pt"), "--port", str(port))
    output = missing.communicate(timeout=120)[0]
    assert missing.returncode != 0 and "checkpoint.pt not found" in output and "hfagp train" in output
    canary = tmp_path / "CANARY"
    crafted = tmp_path / "driver" / "expression" / "checkpoint.pt"
    crafted.parent.mkdir(parents=True)
    torch.save({"format": "hfagp-driver-1", "driver": _payload(canary)}, crafted)
    refused = _hfagp_view(str(crafted), "--port", str(port))
    output = refused.communicate(timeout=120)[0]
    assert refused.returncode != 0 and "refused" in output and "Nothing in it was run" in output
    assert not canary.exists(), "the payload ran"
    assert "viser" not in output and not _listening(port)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_serves_on_localhost_prints_the_url_and_stops_on_a_signal(avatar, stop_signal):
    port = free_port()
    # Started with SIGINT ignored, as a background job of a non-interactive shell is (CI scripts, `make test &`):
    # Ctrl-C must still stop the viewer then (it used to hang until killed).
    process = _hfagp_view(str(avatar["checkpoint"]), "--port", str(port),
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        url, lines = None, []
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if line.startswith("hfagp view:"):
                url = line.split(" at ")[1].split()[0]
            if not line and process.poll() is not None:
                break
        assert url == f"http://localhost:{port}", "".join(lines)
        page = urllib.request.urlopen(url, timeout=30).read().decode()
        assert "<html" in page.lower()
        assert _listening_addresses(port) == {"127.0.0.1"}  # bound to localhost only
        process.send_signal(stop_signal)
        rest = process.communicate(timeout=60)[0]
        assert process.returncode == 0 and "hfagp view: stopped" in rest
        assert not _listening(port)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- a real browser ------------------------------------------------------------------------------------------
def _browser_tools() -> None:
    if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists():
        return
    failure = apt_install(["chromium", "chromium-driver"])
    if failure is not None:
        pytest.skip(f"the browser test needs Debian's chromium and chromium-driver: {failure}")


@pytest.fixture(scope="module")
def browser():
    _browser_tools()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,700",
                     "--enable-unsafe-swiftshader", "--use-angle=swiftshader"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture()
def viewer(model):
    import viser._client_autobuild as autobuild

    # viser serves the client built into its wheel; it would try to build one (needs node) only from a source checkout.
    assert not autobuild._is_editable_install() and (autobuild.build_dir / "index.html").is_file()
    from hfagp.evaluate.view import Viewer

    server = Viewer(model, "127.0.0.1", free_port())
    yield server
    server.stop()


def _wait(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def _screenshot(driver) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB"))


def _open_tab(driver, viewer, new: bool):
    if new:
        driver.switch_to.new_window("tab")
    before = set(viewer.sessions)
    driver.get(viewer.url)
    _wait(lambda: set(viewer.sessions) - before)
    session = viewer.sessions[(set(viewer.sessions) - before).pop()]
    _wait(lambda: session.renders > 0 and not session.low_res_shown)
    return session


def _press_on_frame_slider(driver, *keys) -> None:
    """Keyboard on the frame slider's thumb (the first slider), focused by script so no overlay can catch it."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "[role=slider]"))
    thumb = driver.find_elements(By.CSS_SELECTOR, "[role=slider]")[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus();", thumb)
    ActionChains(driver).send_keys(*keys).perform()


def test_browser_gets_frames_and_its_camera_and_sliders_change_them(browser, viewer, model):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    session = _open_tab(browser, viewer, new=False)
    first, shot = session.last_image.copy(), _screenshot(browser)
    assert shot.std() > 10  # the page shows the rendered image (not a blank canvas)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "view_screenshot.png"))
    # The session starts at frame 0's tracked camera; what it shows is that frame's render beside its crop.
    assert session.frame_index == 0
    # Dragging in the browser orbits the camera: a new view is rendered.
    renders = session.renders
    canvas = browser.find_element(By.TAG_NAME, "canvas")
    ActionChains(browser).move_to_element(canvas).click_and_hold().move_by_offset(60, 0).pause(0.2).move_by_offset(40, 0).release().perform()
    _wait(lambda: session.renders > renders and not session.low_res_shown and not np.array_equal(session.last_image, first))
    moved = session.last_image.copy()
    assert not np.array_equal(_screenshot(browser), shot)
    # The frame slider (keyboard on its thumb) drives the avatar with frame 1's signal.
    _press_on_frame_slider(browser, Keys.HOME, Keys.ARROW_RIGHT)
    _wait(lambda: session.frame_index == 1 and not session.low_res_shown and not np.array_equal(session.last_image, moved))
    np.testing.assert_array_equal(session.weights, model.frame_weights[1])
    browser.save_screenshot(str(ARTIFACTS / "view_screenshot_frame1.png"))


def test_two_tabs_keep_their_own_views(browser, viewer, model):
    from selenium.webdriver.common.keys import Keys

    from hfagp.evaluate.view_camera import orbit_label

    first = _open_tab(browser, viewer, new=True)
    second = _open_tab(browser, viewer, new=True)
    _press_on_frame_slider(browser, Keys.END)  # the second tab is in front
    _wait(lambda: second.frame_index == len(model.frames) - 1 and not second.low_res_shown
          and second._last_state == second._state(second._camera_orbit()))
    assert first.frame_index == 0
    for session in (first, second):  # each tab's last image is its own state's render, bitwise
        orbit = session._camera_orbit()
        own = model.render(session.weights, orbit_label(orbit))
        assert np.array_equal(session.last_image[:, : own.shape[1]], own)
