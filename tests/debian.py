"""Debian packages a test needs (SLURM, chromium): installed with apt-get, one install at a time.

Two apt-gets at once fail on dpkg's lock (two test runs side by side, or a test file run alone beside the
suite), so every install here holds one file lock for its whole apt-get (update) sequence.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

LOCK = Path("/tmp/hfagp-tests-apt.lock")


def apt_install(packages: list[str], timeout: float = 900) -> str | None:
    """``apt-get install`` the packages (``apt-get update`` first only if the plain install fails).

    Returns None on success, else why it failed (for the test's skip message). Needs root and apt-get.
    """
    if shutil.which("apt-get") is None:
        return "apt-get is unavailable"
    if os.geteuid() != 0:
        return "apt-get needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        try:
            result = subprocess.run(install, capture_output=True, text=True, env=env, timeout=timeout)
            if result.returncode != 0:
                subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=600)
                result = subprocess.run(install, capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            return f"apt-get could not install {' '.join(packages)} in time: {err}"
    if result.returncode != 0:
        return f"apt-get could not install {' '.join(packages)}: {(result.stdout + result.stderr)[-1500:]}"
    return None
