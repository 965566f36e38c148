"""``hfagp view``: look at a trained avatar live in the browser (viser), orbit it, drive it by hand, by the
subject's own frames, or (audio avatars) by an audio track played in the browser.

    hfagp view results/demo/driver/expression/checkpoint.pt          # prints the URL (localhost:8080)

Every image is the generator's volume rendering + super-resolution at the browser camera (clamped to the
range the generator supports, :mod:`hfagp.evaluate.view_camera`) and at the latent of the current driving
state, rendered deterministically. Each browser tab is a session with its own controls, camera and render
thread; the model is shared under a lock (:class:`hfagp.evaluate.view_model.ViewerModel`). While the
camera moves the neural rendering runs at half the chosen resolution, and at full resolution once it stops.
viser serves its prebuilt web client from its wheel: nothing is built or downloaded.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from hfagp.errors import HfagpError
from hfagp.evaluate import view_camera
from hfagp.evaluate.view_model import SubjectFiles, ViewerModel, nrr_choices
from hfagp.logs import get_logger

log = get_logger("view")

SETTLE_S = 0.3  # camera idle time before the full-resolution frame
MAX_SLIDERS = 10  # subspace weights / expression coefficients shown (the first ones: largest variance)


class Session:
    """One browser tab: its controls, camera state and render thread."""

    def __init__(self, viewer: "Viewer", client) -> None:
        self.viewer, self.client, self.model = viewer, client, viewer.model
        self.frame_index = 0
        self.weights = self.model.frame_weights[0].copy()
        self.moved_at = 0.0
        self.low_res_shown = False
        self.wake = threading.Event()
        self.stopped = False
        self.playing_since: float | None = None
        self.renders = 0
        self.last_image: np.ndarray | None = None
        self._last_state: tuple = ()  # what the last image shows (see _state)
        self._syncing = False
        self._build_gui()
        client.camera.on_update(self._on_camera)
        self.thread = threading.Thread(target=self._loop, name=f"hfagp-view-{client.client_id}", daemon=True)
        self.thread.start()

    # -- controls ------------------------------------------------------------------------------------------
    def _build_gui(self) -> None:
        gui, model = self.client.gui, self.model
        self.readout = gui.add_markdown("starting ...")
        self.frame_slider = gui.add_slider("frame", min=0, max=max(len(model.frames) - 1, 1), step=1, initial_value=0)
        self.frame_slider.on_update(lambda _: self._set_frame(int(self.frame_slider.value)))
        self.truth_box = gui.add_checkbox("ground truth beside", initial_value=True)
        self.truth_box.on_update(lambda _: self.wake.set())
        choices = [str(n) for n in nrr_choices(model.full_nrr)]
        self.quality = gui.add_dropdown("neural rendering (quality / speed)", choices, initial_value=str(model.full_nrr))
        self.quality.on_update(lambda _: self.wake.set())
        reset = gui.add_button("reset camera (this frame's tracked view)")
        reset.on_click(lambda _: self.reset_camera())
        self.weight_sliders = []
        with gui.add_folder(f"subspace weights (first {min(MAX_SLIDERS, model.dim)} of {model.dim})"):
            for k in range(min(MAX_SLIDERS, model.dim)):
                spread = 3.0 * float(model.weight_std[k])
                slider = gui.add_slider(f"w{k}", min=-spread, max=spread, step=spread / 100, initial_value=float(self.weights[k]))
                slider.on_update(lambda _, k=k: self._set_weight(k))
                self.weight_sliders.append(slider)
        self.expression_sliders = []
        if model.expressions is not None:
            low, high = model.expressions.min(axis=0), model.expressions.max(axis=0)
            with gui.add_folder("expression coefficients"):
                for k in range(min(MAX_SLIDERS, model.expressions.shape[1])):
                    margin = 0.25 * float(high[k] - low[k]) + 1e-3
                    slider = gui.add_slider(f"e{k}", min=float(low[k]) - margin, max=float(high[k]) + margin,
                                            step=(float(high[k] - low[k]) + 2 * margin) / 200, initial_value=float(model.expressions[0, k]))
                    slider.on_update(lambda _: self._set_expression())
                    self.expression_sliders.append(slider)
        if self.viewer.playback is not None:
            play = gui.add_button("play audio (drives the avatar)")
            play.on_click(lambda _: self.play())
            stop = gui.add_button("stop")
            stop.on_click(lambda _: self.stop_playback())

    def _set_frame(self, index: int) -> None:
        if self._syncing:
            return
        self.frame_index = max(0, min(index, len(self.model.frames) - 1))
        self.weights = self.model.frame_weights[self.frame_index].copy()
        self._sync_sliders(expressions=True, frame=True)
        self.wake.set()

    def _set_weight(self, k: int) -> None:
        if self._syncing:
            return
        self.weights[k] = float(self.weight_sliders[k].value)
        self.wake.set()

    def _set_expression(self) -> None:
        if self._syncing:
            return
        coefficients = self.model.expressions[self.frame_index].copy()
        for k, slider in enumerate(self.expression_sliders):
            coefficients[k] = float(slider.value)
        self.weights = self.model.weights_of_expression(coefficients)
        self._sync_sliders(expressions=False)
        self.wake.set()

    def _sync_sliders(self, expressions: bool, frame: bool = False) -> None:
        """Show the current weights (and the frame and its coefficients) without re-triggering the callbacks."""
        self._syncing = True
        try:
            if frame and int(self.frame_slider.value) != self.frame_index:
                self.frame_slider.value = self.frame_index
            for k, slider in enumerate(self.weight_sliders):
                slider.value = float(np.clip(self.weights[k], slider.min, slider.max))
            if expressions:
                for k, slider in enumerate(self.expression_sliders):
                    slider.value = float(np.clip(self.model.expressions[self.frame_index, k], slider.min, slider.max))
        finally:
            self._syncing = False

    def _on_camera(self, _camera) -> None:
        self.moved_at = time.monotonic()
        self.wake.set()

    def reset_camera(self) -> None:
        """Put this tab's camera at the tracked camera of the current frame, looking at the pivot."""
        orbit = view_camera.orbit_of_label(self.model.labels[self.frame_index])
        camera = self.client.camera
        with self.client.atomic():
            camera.up_direction = (0.0, 1.0, 0.0)
            camera.position = tuple(view_camera.orbit_position(orbit))
            camera.look_at = tuple(view_camera.camera.CAMERA_PIVOT)
        self.wake.set()

    def play(self) -> None:
        self.viewer.playback.clip.play(0.0)
        self.playing_since = time.monotonic()
        self.wake.set()

    def stop_playback(self) -> None:
        self.viewer.playback.clip.pause()
        self.playing_since = None

    # -- rendering -----------------------------------------------------------------------------------------
    def _camera_orbit(self) -> view_camera.Orbit | None:
        try:
            return view_camera.orbit_of_position(np.asarray(self.client.camera.position))
        except AssertionError:  # no camera message from the browser yet
            return None

    def _loop(self) -> None:
        while not self.stopped:
            self.wake.wait(timeout=0.05)
            self.wake.clear()
            if self.stopped:
                return
            self._advance_playback()
            orbit = self._camera_orbit()
            if orbit is None:
                continue
            moving = time.monotonic() - self.moved_at < SETTLE_S
            # Render when anything shown changed, and once more at full resolution after the camera stops.
            state = self._state(orbit)
            if state == self._last_state and not (self.low_res_shown and not moving):
                continue
            try:
                self._render(orbit, moving, state)
            except Exception:  # noqa: BLE001 - a broken frame must not end the tab's session silently
                log.exception("rendering for browser tab %s failed", self.client.client_id)
                time.sleep(0.5)

    def _state(self, orbit: view_camera.Orbit) -> tuple:
        """Everything the shown image depends on."""
        view = (round(orbit.yaw_deg, 3), round(orbit.pitch_deg, 3), round(orbit.radius, 4))
        return (self.frame_index, self.weights.tobytes(), bool(self.truth_box.value), self.quality.value, view,
                self.playing_since is None)

    def _advance_playback(self) -> None:
        """While audio plays: the weights (and, for the subject's own track, the frame) at the playhead."""
        playback = self.viewer.playback
        if self.playing_since is None or playback is None:
            return
        row = int((time.monotonic() - self.playing_since) * playback.fps)
        if row >= len(playback.weights):
            self.playing_since = None
            return
        self.weights = playback.weights[row].copy()
        if playback.frame_of_row is not None and row in playback.frame_of_row:
            self.frame_index = playback.frame_of_row[row]

    def _render(self, orbit: view_camera.Orbit, moving: bool, state: tuple) -> None:
        selected = int(self.quality.value)
        nrr = max(16, selected // 2) if moving else selected
        start = time.perf_counter()
        image = self.model.render(self.weights, view_camera.orbit_label(orbit), nrr)
        # The frame's ground truth beside, unless a track other than the subject's own drives the avatar.
        foreign_track = self.playing_since is not None and self.viewer.playback.frame_of_row is None
        if self.truth_box.value and not foreign_track:
            from hfagp.io.video import side_by_side

            image = side_by_side(image, self.model.truth[self.frame_index])
        self.last_image = image
        self.client.scene.set_background_image(view_camera.fit_aspect(image, self.client.camera.aspect), format="jpeg", jpeg_quality=92)
        seconds = time.perf_counter() - start
        self.renders += 1
        self.low_res_shown = nrr != selected
        self._last_state = state
        frame = self.model.frames[self.frame_index]
        split = "test" if frame in self.model.test_frames else "train"
        self.readout.content = (
            f"**{1 / seconds:.1f} frames/s** | {self.model.resolution} px, neural rendering {nrr}"
            f"{' (moving)' if nrr != selected else ''} | frame {frame} ({split}) | yaw {orbit.yaw_deg:+.0f}, "
            f"pitch {orbit.pitch_deg:+.0f}{' (clamped)' if orbit.clamped else ''} | renders {self.renders}"
        )

    def close(self) -> None:
        self.stopped = True
        self.wake.set()


class Playback:
    """An audio avatar's soundtrack: the clip in the browser and the weights of each of its frames."""

    def __init__(self, server, model: ViewerModel, wav: Path, features: Path, own: bool) -> None:
        import viser_audio

        from hfagp.io.artifacts import load_npy
        from hfagp.io.video import read_wav_mono

        samples, rate = read_wav_mono(wav)
        self.weights = model.playback_weights(load_npy(features, "audio features", "make them with `hfagp audio-features`"))
        self.fps = model.fps
        # The subject's own track: row k is video frame k, so its ground truth can be shown beside.
        self.frame_of_row = {frame: i for i, frame in enumerate(model.frames)} if own else None
        self.clip = viser_audio.AudioApi(server).add("/hfagp_audio", samples, rate)


class Viewer:
    """The viser server and its sessions (one per browser tab)."""

    def __init__(self, model: ViewerModel, host: str = "127.0.0.1", port: int = 8080, playback_files=None) -> None:
        import viser

        self.model = model
        self.server = viser.ViserServer(host=host, port=port, verbose=False)
        self.server.scene.set_up_direction("+y")
        self.sessions: dict[int, Session] = {}
        self.playback = None
        if playback_files is not None:
            self.playback = Playback(self.server, model, *playback_files)
        self.server.on_client_connect(self._connect)
        self.server.on_client_disconnect(self._disconnect)

    @property
    def url(self) -> str:
        host = self.server.get_host()
        return f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0') else host}:{self.server.get_port()}"

    def _connect(self, client) -> None:
        session = Session(self, client)
        self.sessions[client.client_id] = session
        try:
            session.reset_camera()
        except AssertionError:
            pass

    def _disconnect(self, client) -> None:
        session = self.sessions.pop(client.client_id, None)
        if session is not None:
            session.close()

    def stop(self) -> None:
        for session in list(self.sessions.values()):
            session.close()
        self.server.stop()


def run_view(args) -> None:
    """``hfagp view``: check the inputs, start the server, print the URL, serve until Ctrl-C."""
    from hfagp.runtime import install_stop_handler, resolve_device, restore_handlers, setup_torch

    checkpoint = Path(args.checkpoint)
    if not checkpoint.is_file():
        raise HfagpError(f"trained avatar {checkpoint} not found; train it with `hfagp train` (or `make demo`)")
    files = SubjectFiles.beside(checkpoint)
    for name in ("crops", "cameras", "split", "expressions", "frames_table"):
        if getattr(args, name, None):
            setattr(files, name, Path(getattr(args, name)))
    setup_torch(args.threads)
    model = ViewerModel(checkpoint, files, str(resolve_device(args.device)))  # refuses a bad checkpoint first
    playback = None
    if model.kind == "audio":
        if bool(args.audio) != bool(args.audio_features):
            raise HfagpError("--audio and --audio-features go together: the wav to play and its windows "
                             "(`hfagp audio-features` of that wav)")
        wav, features = args.audio or files.audio, args.audio_features or files.audio_features
        if wav is not None and features is not None:
            playback = (Path(wav), Path(features), not args.audio)
        else:
            log.warning("no audio track (audio.wav and audio_features.npy) beside this audio avatar: audio playback is off")
    viewer = Viewer(model, args.host, args.port, playback)
    print(f"hfagp view: {model.kind} avatar of {len(model.frames)} frames at {viewer.url} (Ctrl-C stops)", flush=True)
    stop = threading.Event()
    old_handlers = install_stop_handler(lambda *_: stop.set())  # Ctrl-C and SIGTERM (kill, SLURM, systemd)
    try:
        while not stop.wait(1.0):
            pass
        print("hfagp view: stopped", flush=True)
    finally:
        restore_handlers(old_handlers)
        viewer.stop()
