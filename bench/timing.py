"""The timing loops the bench scripts share (imported as ``timing``: a script's own folder is on sys.path)."""

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


def mean_seconds(fn: Callable[[], object], warmup: int, min_time: float, max_calls: int,
                 sync: Callable[[], None] = lambda: None) -> float:
    """Mean seconds of ``fn()`` after ``warmup`` calls: at least 2 timed calls, then more until ``min_time``
    has passed or ``max_calls`` were made; ``sync`` waits for queued work (a CUDA synchronize) at both ends."""
    for _ in range(warmup):
        fn()
    sync()
    calls, start = 0, time.perf_counter()
    while calls < 2 or (calls < max_calls and time.perf_counter() - start < min_time):
        fn()
        calls += 1
    sync()
    return (time.perf_counter() - start) / calls

