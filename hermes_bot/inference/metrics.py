"""Backend metrics (the executor's and the remote backend's): throughput over a sliding window,
time to first token, latency percentiles, prompt tokens computed and served from the prefix
cache; :meth:`Metrics.backend_stats` turns them into what /status shows."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from hermes_bot.backend import BackendStats, ServerStatus


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


@dataclass
class Snapshot:
    """Numbers at one moment (milliseconds for times)."""

    tokens_per_second: float
    time_to_first_token_ms: float
    latency_p50_ms: float
    latency_p95_ms: float
    completed: int
    failed: int
    rejected: int
    generated_tokens: int
    prompt_tokens: int
    cached_prompt_tokens: int
    prefill_tokens: int
    preempted: int


class Metrics:
    """Counters the worker updates and /status reads (thread-safe)."""

    def __init__(self, window_seconds: float = 30.0, history: int = 1000) -> None:
        self._lock = threading.Lock()
        self._window = window_seconds
        self._steps: deque[tuple[float, int]] = deque()
        self._latencies: deque[float] = deque(maxlen=history)
        self._ttfts: deque[float] = deque(maxlen=history)
        self.completed = self.failed = self.rejected = self.generated_tokens = 0
        self.prompt_tokens = self.cached_prompt_tokens = self.prefill_tokens = 0
        self.preempted = 0

    def tokens(self, count: int) -> None:
        """``count`` tokens were generated just now."""
        now = time.monotonic()
        with self._lock:
            self.generated_tokens += count
            self._steps.append((now, count))
            while self._steps and now - self._steps[0][0] > self._window:
                self._steps.popleft()

    def prompt(self, tokens: int, cached: int) -> None:
        """A prompt of ``tokens`` joined; ``cached`` of them came from the prefix cache."""
        with self._lock:
            self.prompt_tokens += tokens
            self.cached_prompt_tokens += cached

    def prefilled(self, tokens: int) -> None:
        """A prefill pass computed ``tokens`` prompt tokens (padding not counted)."""
        with self._lock:
            self.prefill_tokens += tokens

    def preempt(self) -> None:
        """A running request went back to the queue: the KV cache was full."""
        with self._lock:
            self.preempted += 1

    def first_token(self, seconds: float) -> None:
        """A request got its first token ``seconds`` after it was submitted."""
        with self._lock:
            self._ttfts.append(seconds)

    def finished(self, seconds: float | None) -> None:
        """A request completed after ``seconds`` (None: it failed)."""
        with self._lock:
            if seconds is None:
                self.failed += 1
            else:
                self.completed += 1
                self._latencies.append(seconds)

    def reject(self) -> None:
        """A request was turned away (queue full)."""
        with self._lock:
            self.rejected += 1

    def snapshot(self) -> Snapshot:
        """The current numbers."""
        now = time.monotonic()
        with self._lock:
            steps = [(t, n) for t, n in self._steps if now - t <= self._window]
            span = (now - steps[0][0]) if len(steps) > 1 else 0.0
            rate = sum(n for _, n in steps) / span if span > 0 else 0.0
            latencies = list(self._latencies)
            ttfts = list(self._ttfts)
            return Snapshot(
                tokens_per_second=rate,
                time_to_first_token_ms=1000 * sum(ttfts) / len(ttfts) if ttfts else 0.0,
                latency_p50_ms=1000 * percentile(latencies, 0.5),
                latency_p95_ms=1000 * percentile(latencies, 0.95),
                completed=self.completed,
                failed=self.failed,
                rejected=self.rejected,
                generated_tokens=self.generated_tokens,
                prompt_tokens=self.prompt_tokens,
                cached_prompt_tokens=self.cached_prompt_tokens,
                prefill_tokens=self.prefill_tokens,
                preempted=self.preempted,
            )

    def backend_stats(
        self,
        model: str,
        device: str,
        *,
        queue_depth: int = 0,
        running: int = 0,
        servers: tuple[ServerStatus, ...] = (),
        kv_cache_used: float | None = None,
    ) -> BackendStats:
        """What /status shows for a backend: these numbers and what only the backend knows."""
        snap = self.snapshot()
        return BackendStats(
            model=model,
            device=device,
            queue_depth=queue_depth,
            running=running,
            tokens_per_second=snap.tokens_per_second,
            time_to_first_token_ms=snap.time_to_first_token_ms,
            latency_p50_ms=snap.latency_p50_ms,
            latency_p95_ms=snap.latency_p95_ms,
            completed=snap.completed,
            failed=snap.failed,
            rejected=snap.rejected,
            generated_tokens=snap.generated_tokens,
            servers=servers,
            kv_cache_used=kv_cache_used,
            preempted=snap.preempted,
        )
