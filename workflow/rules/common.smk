# Helpers shared by the workflow (per-subject settings with defaults applied).

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
