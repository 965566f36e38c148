# Helpers shared by the workflow (per-subject settings with defaults applied).

import re
from pathlib import Path

from hfagp.workflow_support import resolve_config_path

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


_GLOBAL_BLOCKS = ("expressions", "lpips", "inversion", "prior", "training")
_GLOBAL_DEFAULTS = {block: _schema_defaults(block) for block in _GLOBAL_BLOCKS}


def setting(block, key):
    """A global setting of config block `block` (expressions, lpips, inversion, prior), else the schema default."""
    return config.get(block, {}).get(key, _GLOBAL_DEFAULTS[block].get(key))


# Imported subjects (format nerface / adnerf / hfagp): what their import provides.
from hfagp.datasets.workflow import IMPORT_OUTPUTS, provides, subject_kind
from hfagp.workflow_support import workflow_error
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
