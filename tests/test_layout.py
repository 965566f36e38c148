"""The package tree follows the DAG: phases import only earlier phases, libraries import no phase.

Checked on the source (every import statement, also those inside functions), so a shortcut that
climbs back up the pipeline fails here rather than in a reviewer's head.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "hfagp"
# The pipeline's phases in DAG order; each mirrors workflow/rules/<phase>.smk.
PHASES = ("preprocess", "expressions", "prior", "avatar", "evaluate")
# Libraries: they know nothing of the pipeline. audio and datasets also have rules and commands.
LIBRARIES = ("eg3d", "audio", "datasets", "face3d", "losses")
SHARED = ("io", "runtime", "errors", "logs")
MAX_LINES = 400


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        yield path, ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names of the hfagp modules (or names) ``path`` imports, anywhere in the file."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.update(f"{name}.{a.name}" for a in node.names)
    return {n for n in found if n == "hfagp" or n.startswith("hfagp.")}


def _component(name: str) -> str:
    """``hfagp.avatar.training.Trainer`` -> ``avatar``; ``hfagp.__version__`` -> ``hfagp``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] != "__version__" else "hfagp"


def _edges():
    for path, module in _modules():
        for target in _imports(path, module):
            yield module, _component(module), _component(target), target


def test_every_module_is_placed():
    known = set(PHASES) | set(LIBRARIES) | set(SHARED) | {"hfagp", "cli", "__main__"}
    assert {_component(m) for _, m in _modules()} <= known


def test_libraries_and_the_shared_layer_import_no_phase():
    bad = [(m, t) for m, src, dst, t in _edges() if src in LIBRARIES + SHARED and dst in PHASES]
    assert not bad, bad


def test_the_shared_layer_imports_no_library():
    bad = [(m, t) for m, src, dst, t in _edges() if src in SHARED and dst in LIBRARIES]
    assert not bad, bad


def test_no_phase_imports_a_later_phase():
    order = {p: i for i, p in enumerate(PHASES)}
    bad = [(m, t) for m, src, dst, t in _edges() if src in order and dst in order and order[dst] > order[src]]
    assert not bad, bad


def test_components_form_no_cycle():
    graph: dict[str, set[str]] = {}
    for _, src, dst, _ in _edges():
        if src != dst and src not in ("cli", "__main__"):
            graph.setdefault(src, set()).add(dst)

    @functools.cache
    def reaches(a: str, b: str, seen: frozenset = frozenset()) -> bool:
        return any(n == b or (n not in seen and reaches(n, b, seen | {a})) for n in graph.get(a, ()))

    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if reaches(b, a)})
    assert not cycles, cycles


@pytest.mark.parametrize("path", [p for p, _ in _modules()], ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_is_small(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_no_reader_can_run_code():
    """Artifacts are read through hfagp.io.artifacts (weights only, no pickled numpy objects)."""
    offenders = []
    for path, _ in _modules():
        text = path.read_text()
        for pattern in (r"weights_only\s*=\s*False", r"allow_pickle\s*=\s*True", r"\bpickle\.loads?\(", r"torch\.load\("):
            for match in re.finditer(pattern, text):
                line = text[: match.start()].count("\n") + 1
                offenders.append(f"{path.relative_to(REPO)}:{line}: {match.group(0)}")
    allowed = {
        # the whitelisting EG3D unpickler reads embedded storages weights-only
        "hfagp/eg3d/official_pickle.py": "torch.load(",
        # the shared readers themselves
        "hfagp/io/artifacts.py": "torch.load(",
    }
    left = [o for o in offenders if not any(o.startswith(f) and o.endswith(s) for f, s in allowed.items())]
    assert not left, left


def _rule_files() -> dict[str, Path]:
    return {p.stem: p for p in (REPO / "workflow" / "rules").glob("*.smk") if p.stem != "common"}


def test_rule_files_mirror_the_packages():
    """workflow/rules/<name>.smk for every phase and for the libraries with commands, and nothing else."""
    assert set(_rule_files()) == set(PHASES) | {"audio", "datasets"}
    for name in _rule_files():
        assert (PACKAGE / name / "cli.py").is_file(), f"hfagp/{name}/cli.py"


def _commands_of(module: str) -> set[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    sub.add_command = sub.add_parser
    importlib.import_module(module).register(sub)
    return set(sub.choices)


def test_each_rule_file_runs_the_commands_of_its_package():
    from hfagp import cli

    phase_clis = [f"hfagp.{name}.cli" for name in _rule_files()]
    assert set(phase_clis) <= set(cli._COMMAND_MODULES)
    for name, path in _rule_files().items():
        used = set(re.findall(r'"hfagp ([a-z0-9-]+)', path.read_text()))
        if name != "datasets":  # its shell commands are built by import_command() in common.smk
            assert used, path
        assert used <= _commands_of(f"hfagp.{name}.cli"), (path, used - _commands_of(f"hfagp.{name}.cli"))
