"""Fault bookkeeping for the frame pipeline: capped backoff and logs that do not flood.

A camera or predictor fault is never evidence of a failure: it skips the frame
and waits a little longer each time, up to a cap, for as long as it lasts (an
unplugged camera overnight is thousands of faults in a row).
"""

from __future__ import annotations

import logging

log = logging.getLogger("failwatch")

FAULT_BACKOFF_CAP = 30.0
_MAX_DOUBLINGS = 16  # 2**16 s is far above any cap: the exponent stops growing there


class FaultTracker:
    """One kind of fault (a camera, the predictor): backoff and not-too-chatty logs."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0
        self.last = ""

    def backoff(self, interval: float, cap: float = FAULT_BACKOFF_CAP) -> float:
        return min(cap, max(interval, 2.0 ** min(self.count - 1, _MAX_DOUBLINGS)))

    def failed(self, message: str, interval: float, cap: float = FAULT_BACKOFF_CAP) -> float:
        self.count += 1
        wait = self.backoff(interval, cap)
        if self.count == 1 or message != self.last:
            log.warning("%s: %s; print not touched, next try in %g s", self.what, message, wait)
        elif self.count % 10 == 0:
            log.warning("%s: still failing (%d times in a row): %s", self.what, self.count,
                        message)
        else:
            log.debug("%s: %s", self.what, message)
        self.last = message
        return wait

    def ok(self) -> None:
        if self.count:
            log.info("%s: working again after %d failed attempt(s)", self.what, self.count)
        self.reset()

    def reset(self) -> None:
        """A new print starts with a clean slate (and the quick first retries)."""
        self.count = 0
        self.last = ""
