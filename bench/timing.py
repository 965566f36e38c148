"""The timing loop the bench scripts share (imported as ``timing``: a script's own folder is on sys.path)."""

from __future__ import annotations

import time
from typing import Callable

WARMUP_CALLS = 2


def time_calls(fn: Callable[[], object], repeat: int) -> list[float]:
    """Run ``fn`` WARMUP_CALLS + repeat times; return the timed durations in seconds."""
    for _ in range(WARMUP_CALLS):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times
