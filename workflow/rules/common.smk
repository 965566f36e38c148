# Helpers shared by the workflow (per-subject settings with defaults applied).

import re
from pathlib import Path

from hfagp.io.workflow import resolve_config_path

SUBJECTS = sorted(config["subjects"])

# Defaults of the preprocess block, read from the schema so they live in one place.
_SCHEMA = Path(workflow.basedir) / "schemas" / "config.schema.yaml"


def _schema_defaults(block):
    import yaml

    with open(_SCHEMA) as fh:
        schema = yaml.safe_load(fh)
    props = schema["$defs"][block]["properties"]
    return {key: spec["default"] for key, spec in props.items() if "default" in spec}


_PREPROCESS_DEFAULTS = _schema_defaults("preprocess")
_SUBJECT_DEFAULTS = _schema_defaults("subject")


def subject_config(subject):
    """The subject's entry with schema defaults filled in."""
    return {**_SUBJECT_DEFAULTS, **config["subjects"][subject]}


def preprocess_setting(subject, key):
    """A preprocess setting: the subject's override, else the global block, else the default."""
    override = config["subjects"][subject].get("preprocess", {})
    if key in override:
        return override[key]
    return config.get("preprocess", {}).get(key, _PREPROCESS_DEFAULTS.get(key))


def subject_input(subject, key, what):
    """Resolve a subject's input path (plain or package:...) at parse time, with a clear error."""
    return resolve_config_path(subject_config(subject)[key], what=f"{what} of subject '{subject}'")


def optional_flag(flag, value):
    """`--flag value` when value is set, else nothing (for shell commands)."""
    return "" if value is None else f"{flag} {value}"


_GLOBAL_BLOCKS = ("expressions", "lpips", "evaluation", "inversion", "prior", "training")
_GLOBAL_DEFAULTS = {block: _schema_defaults(block) for block in _GLOBAL_BLOCKS}


def setting(block, key):
    """A global setting of config block `block` (expressions, lpips, evaluation, ...), else the schema default."""
    return config.get(block, {}).get(key, _GLOBAL_DEFAULTS[block].get(key))


# Imported subjects (format nerface / adnerf / hfagp): what their import provides.
from hfagp.datasets.workflow import IMPORT_OUTPUTS, provides, subject_kind
from hfagp.io.workflow import workflow_error
from hfagp.errors import HfagpError

try:
    SUBJECT_KIND = {s: subject_kind(subject_config(s)) for s in SUBJECTS}
except HfagpError as err:
    raise workflow_error(str(err)) from None


def subjects_of(*kinds):
    """Regex matching exactly the subjects of these kinds (never matches when there are none)."""
    names = [s for s in SUBJECTS if SUBJECT_KIND[s] in kinds]
    return "|".join(re.escape(s) for s in names) if names else "(?!)"


def subjects_with(artifact):
    """Subjects that can have `artifact` (e.g. audio_features.npy: not NeRFace imports, which have no audio)."""
    return [s for s in SUBJECTS if provides(SUBJECT_KIND[s], artifact)]


def import_outputs(kind):
    """Named outputs (results/{subject}/...) written by the import of `kind`."""
    return {
        key: directory(f"results/{{subject}}/{name}") if name in ("frames", "crops") else f"results/{{subject}}/{name}"
        for key, name in IMPORT_OUTPUTS[kind].items()
    }


def import_command(fmt):
    """Shell command importing a dataset of format `fmt` (nerface, adnerf or hfagp)."""
    return (
        f"hfagp import --format {fmt} {{params.dataset:q}} -o results/{{wildcards.subject}} "
        "{params.fps} --threads {threads} --log {log:q}"
    )


def import_params():
    """Params shared by the imports; a changed dataset path or fps reruns the import."""
    return {
        "dataset": lambda w: subject_config(w.subject)["dataset"],
        "fps": lambda w: optional_flag("--fps", subject_config(w.subject)["fps"]),
    }


def expressions_input(subject):
    """{"expressions": path} for subjects that have expression coefficients, else {}."""
    if provides(SUBJECT_KIND[subject], "expressions.parquet"):
        return {"expressions": f"results/{subject}/expressions.parquet"}
    return {}


def subject_signals(subject):
    """Driving signals a subject's data gives (rgb: its crops; expression; audio), trained on or not."""
    kind = SUBJECT_KIND[subject]
    signals = ["rgb"]
    signals += ["expression"] if provides(kind, "expressions.parquet") else []
    signals += ["audio"] if provides(kind, "audio_features.npy") else []
    return signals


def subject_drivers(subject):
    """Drivers trained for a subject: its `drivers` list, else every driver its data allows.

    `drivers: []` trains nothing: such a subject only lends its signals to cross-driving (no prior, no avatar).
    """
    chosen = subject_config(subject).get("drivers")
    allowed = subject_signals(subject)
    if chosen is None:
        return allowed
    missing = [d for d in chosen if d not in allowed]
    if missing:
        raise workflow_error(
            f"subject '{subject}' asks for drivers {missing} but its data has no "
            f"{' / '.join('expression coefficients' if d == 'expression' else 'audio' for d in missing)}; "
            "remove them from its `drivers:` list"
        )
    return list(chosen)


AVATAR_SUBJECTS = [s for s in SUBJECTS if subject_drivers(s)]


def driver_signal_input(subject, driver):
    """The driving signal file of a driver: expressions.parquet, audio_features.npy, or none (rgb: the crops)."""
    if driver == "expression":
        return {"expressions": f"results/{subject}/expressions.parquet"}
    if driver == "audio":
        return {"audio_features": f"results/{subject}/audio_features.npy"}
    return {}


def driver_signal_flags(input):
    """`--expressions P` / `--audio-features P` for the signal inputs a job has."""
    flags = []
    if "expressions" in input.keys():
        flags.append(f"--expressions {input.expressions}")
    if "audio_features" in input.keys():
        flags.append(f"--audio-features {input.audio_features}")
    return " ".join(flags)


def shared_fit_driver(subject):
    """The driver whose person fit the subject's other drivers start from (training.shared_fit_driver), or None.

    None when unset or when the subject has no such driver (then every driver starts from the prior)."""
    base = setting("training", "shared_fit_driver")
    return base if base is not None and base in subject_drivers(subject) else None


def is_follower(subject, driver):
    base = shared_fit_driver(subject)
    return base is not None and driver != base


def training_start_input(subject, driver):
    """What a driver starts from: the prior stage's outputs, or (a follower) the shared-fit driver's person fit."""
    if is_follower(subject, driver):
        return {"person": f"results/{subject}/driver/{shared_fit_driver(subject)}/person"}
    return {
        "prior": f"results/{subject}/prior.npz",
        "generator": f"results/{subject}/inversion/generator.json",
        "latents": f"results/{subject}/inversion/latents.pt",
    }


def training_start_flags(input):
    """`--prior P --generator-json G --latents L` from the prior stage or from a person fit folder."""
    from shlex import quote

    if "person" in input.keys():
        folder = Path(input.person)
        paths = (folder / "prior.npz", folder / "generator.json", folder / "latents.pt")
    else:
        paths = (input.prior, input.generator, input.latents)
    return "--prior {} --generator-json {} --latents {}".format(*(quote(str(p)) for p in paths))


def training_flags(subject, driver):
    """The training block as `hfagp train` options for `driver` (params: a change reruns only the drivers it concerns).

    The shared-fit driver trains for shared_fit_steps and without warm start; its followers warm-start on its
    latents and keep its generator frozen (their driver and subspace train)."""
    base = shared_fit_driver(subject)
    steps = setting("training", "steps")
    warm_start = setting("training", "warm_start_steps")
    tune_iter = setting("training", "tune_iter")
    if base is not None and driver == base:
        steps = setting("training", "shared_fit_steps") or steps
        warm_start = 0
    elif base is not None:
        tune_iter = steps  # a follower renders with the person fit's generator as it is
    flags = {
        "lr": "--lr",
        "ema_decay": "--ema-decay",
        "mse_weight": "--mse-weight",
        "lpips_weight": "--lpips-weight",
        "ssim_weight": "--ssim-weight",
        "face_ssim_weight": "--face-ssim-weight",
        "distortion_weight": "--distortion-weight",
        "distortion_from": "--distortion-from",
        "checkpoint_every": "--checkpoint-every",
        "sample_every": "--sample-every",
        "log_every": "--log-every",
    }
    if driver == "rgb":
        flags.update(rgb_resolution="--rgb-resolution", driver_width="--driver-width")
    if driver == "audio":
        flags.update(smoothing_start="--smoothing-start", smoothing_window="--smoothing-window")
    parts = [f"--steps {steps}", f"--warm-start-steps {warm_start}", f"--tune-iter {tune_iter}"]
    parts += [f"{flag} {setting('training', key)}" for key, flag in flags.items()]
    parts.append(optional_flag("--resolution", setting("training", "resolution")))
    parts.append(optional_flag("--generator-lr", setting("training", "generator_lr")))
    parts.append(f"--lpips-backbone {setting('lpips', 'backbone')}")
    parts.append(optional_flag("--lpips-weights", setting("lpips", "weights")))
    return " ".join(p for p in parts if p)


def render_audio_input(subject, driver):
    """The subject's audio.wav for the audio avatar's videos (video subjects have one), else nothing."""
    if driver == "audio" and SUBJECT_KIND[subject] == "video":
        return {"audio": f"results/{subject}/audio.wav"}
    return {}


def cross_inputs(subject, driver, source):
    """Inputs of cross-driving `subject`'s `driver` avatar with `source`'s test-split signal."""
    if source not in SUBJECTS:
        raise workflow_error(f"cross_driving of subject '{subject}' names '{source}', which is not a subject in config.yaml")
    inputs = {
        "avatar": f"results/{subject}/driver/{driver}/checkpoint.pt",
        "crops": f"results/{subject}/crops",
        "cameras": f"results/{subject}/cameras.parquet",
        "split": f"results/{subject}/split.json",
        **driver_signal_input(subject, driver),
        "source_crops": f"results/{source}/crops",
        "source_cameras": f"results/{source}/cameras.parquet",
        "source_split": f"results/{source}/split.json",
        "source_frames_table": f"results/{source}/frames.parquet",
    }
    for key, path in driver_signal_input(source, driver).items():
        inputs[f"source_{key}"] = path
    inputs.update({f"source_{k}": v for k, v in render_audio_input(source, driver).items()})
    return inputs


def cross_source_flags(input):
    """`--source-...` options of `hfagp render-cross` for the source inputs a job has."""
    keys = ("crops", "cameras", "split", "frames_table", "expressions", "audio_features", "audio")
    return " ".join(
        f"--source-{key.replace('_', '-')} {input[f'source_{key}']}" for key in keys if f"source_{key}" in input.keys()
    )


def cross_videos():
    """Every cross-driving video declared in config.yaml: each avatar of the subject whose signal the source has."""
    videos = []
    for subject in SUBJECTS:
        for source in subject_config(subject).get("cross_driving") or []:
            if source not in SUBJECTS:
                raise workflow_error(f"cross_driving of subject '{subject}' names '{source}', which is not a subject in config.yaml")
            for driver in subject_drivers(subject):
                if driver in subject_signals(source):  # the source lends its signal; it needs no avatar of its own
                    videos.append(f"results/{subject}/render/{driver}/cross_{source}.mp4")
    return videos


# Chunks of the per-frame preprocessing jobs (rules detect_faces and align_crops).
import pyarrow.parquet as _pq

from hfagp.preprocess.frame_store import chunk_count


def chunk_size(subject):
    """Frames per chunk of a subject's detection and crop jobs (0: one job; imported frames are not chunked)."""
    return preprocess_setting(subject, "chunk_frames") if SUBJECT_KIND[subject] == "video" else 0


def frame_chunks(subject):
    """Chunk numbers of a subject (read from frames.parquet once the frames checkpoint has run)."""
    size = chunk_size(subject)
    if size == 0:
        return [0]
    table = checkpoints.frames.get(subject=subject).output.table
    return list(range(chunk_count(_pq.ParquetFile(table).metadata.num_rows, size)))


def chunk_files(subject, pattern):
    """The chunk outputs a gathering rule waits for; none when the video is one chunk (the gathering job
    then does the per-frame work itself, as for a short video)."""
    chunks = frame_chunks(subject)
    if len(chunks) == 1:
        return []
    return [f"results/{subject}/chunks/{pattern.format(chunk=k)}" for k in chunks]


def gather_flag(flag, paths):
    """`--flag 'a' 'b' ...` for a list of chunk outputs, nothing for none."""
    from shlex import quote

    if isinstance(paths, (str, Path)):  # a dry run before the frames checkpoint: its folder stands in for the chunks
        paths = [paths]
    return f"{flag} {' '.join(quote(str(p)) for p in paths)}" if paths else ""


def detector_flags(subject):
    """The detector options shared by detect_faces and landmarks."""
    upsample = preprocess_setting(subject, "upsample")
    return " ".join(
        [
            f"--detector {preprocess_setting(subject, 'detector')}",
            f"--upsample {upsample}",
            optional_flag("--predictor", preprocess_setting(subject, "predictor")),
            optional_flag("--cnn-model", preprocess_setting(subject, "cnn_model")),
        ]
    )


def memory_for_frames(base_mb, mb_per_frame, table):
    """mem_mb of a job whose memory grows with the rows of its input `table` (the joint fit of all frames
    holds about 0.3 MB per frame: 2.1 GB for a 5-minute video), so SLURM does not kill long videos."""

    def mem_mb(wildcards, input):
        try:
            rows = _pq.ParquetFile(input[table]).metadata.num_rows
        except (OSError, KeyError, AttributeError):  # not there yet (a dry run)
            rows = 0
        return int(base_mb + mb_per_frame * rows)

    return mem_mb

