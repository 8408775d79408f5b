"""Per-key rate limits: one token bucket per API key (or session, or client address)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from datadrive.errors import RateLimitError

__all__ = ["RateLimiter"]


class RateLimiter:
    """Token buckets: ``per_minute`` tokens a minute, up to ``burst`` at once.

    Buckets live in this process (one replica's view; a deployment with
    several replicas divides the rate between them at its load balancer).
    The least recently used buckets are dropped beyond ``max_keys``.
    """

    def __init__(self, per_minute: int, burst: int, max_keys: int = 100_000) -> None:
        self.rate_per_s = per_minute / 60.0
        self.burst = float(max(burst, 1))
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate_per_s > 0

    def admit(self, key: str, now: float | None = None) -> None:
        """Take one token from ``key``'s bucket.

        Raises:
            RateLimitError: if the bucket is empty (with the seconds to wait).
        """
        if not self.enabled:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate_per_s)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate_per_s
                raise RateLimitError(f"rate limit reached; retry in {wait:.1f} s", retry_after_s=wait)
            self._buckets[key] = (tokens - 1.0, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
