"""Helpers for ``workflow/rules/audio.smk`` (kept here so the rule file holds only rules).

Each takes the Snakemake ``config`` dict; path errors are raised as
Snakemake ``WorkflowError`` with the :class:`HfagpError` message.
"""

from __future__ import annotations

import shlex

from hfagp.audio.deepspeech import missing_model_message
from hfagp.errors import HfagpError
from hfagp.io.paths import resolve_input
from hfagp.io.workflow import resolve_config_path, workflow_error


def audio_source(config: dict, subject: str) -> str:
    """The subject's ``audio`` file when set, else its ``video``, resolved (``package:`` allowed)."""
    entry = config["subjects"][subject]
    key = "audio" if entry.get("audio") else "video"
    return resolve_config_path(entry[key], what=f"{key} (audio source) of subject '{subject}'")


def deepspeech_model(config: dict) -> str | list:
    """``models.deepspeech`` resolved to an existing file, or ``[]`` (no input) when null."""
    model = (config.get("models") or {}).get("deepspeech")
    if not model:
        return []
    try:
        return str(resolve_input(model, what="DeepSpeech model"))
    except HfagpError:
        raise workflow_error(missing_model_message(model)) from None


def deepspeech_flag(config: dict) -> str:
    """``--deepspeech MODEL`` when a model is configured, else an empty string (the fallback)."""
    model = deepspeech_model(config)
    return f"--deepspeech {shlex.quote(model)}" if model else ""
