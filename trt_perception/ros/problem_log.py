"""One log line per problem per throttle period, from a logger that must never take the node down.

rclpy throttles per call site, not per problem: five different bad encodings arriving through one
``warn_input`` would share one line per period, and rclpy raises ``ValueError("Logger severity cannot
be changed between calls")`` when one call site logs WARN and later ERROR. So the package throttles by
problem key itself, logs each severity from its own call site, and swallows what the logger raises.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from .diagnostics import ERROR


class ProblemLog:
    """``log(key, level, text, throttle_s)``: logs unless the same key and level did within throttle_s.

    A problem whose level changes (WARN -> ERROR) logs at once: that is news, not a repeat.
    """

    def __init__(self, logger: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._clock = clock
        self._last: dict[tuple[str, int], float] = {}

    def __call__(self, key: str, level: int, text: str, throttle_s: float = 5.0) -> bool:
        """True when the line was written, False when it was throttled."""
        now = self._clock()
        last = self._last.get((key, level))
        if last is not None and now - last < throttle_s:
            return False
        self._last[(key, level)] = now
        try:
            if level >= ERROR:
                self._logger.error(text)
            else:
                self._logger.warning(text)
        except Exception as exc:  # a broken or shut-down logger must not end the callback that reports
            print(f"[{key}] {text} (logger failed: {exc})", file=sys.stderr)
        return True
