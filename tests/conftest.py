"""Shared pytest fixtures.

Conformance fixtures made with the original tools live outside the repository
(``../shared/fixtures`` next to the checkout, or wherever ``HFAGP_FIXTURES``
points). Tests that need them skip with a clear reason when they are absent:
users who clone the repository do not have them, CI does.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def fixtures_root() -> Path:
    """Directory holding the shared conformance fixtures."""
    return Path(os.environ.get("HFAGP_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures"))


def require_fixture(*parts: str) -> Path:
    """Return ``fixtures_root()/parts`` or skip the test saying what is missing."""
    path = fixtures_root().joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"conformance fixture {path} is absent; set HFAGP_FIXTURES to the shared fixtures folder to run this test"
        )
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
