"""What an operator sees: Prometheus metrics, ``/healthz``, the per-turn log line, JSON logs.

:class:`Telemetry` owns one Prometheus registry (not the process-wide one),
the health checks and the turn counters that ``/status`` shows.
:func:`serve` publishes ``/metrics`` and ``/healthz`` on one port. The turn
log line never carries message text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hermes_bot.backend import BackendStats
from hermes_bot.errors import Busy, GenerationError, HermesBotError, InputRejected

if TYPE_CHECKING:
    from hermes_bot.conversation import ConversationStore

_log = logging.getLogger(__name__)

OUTCOMES = ("answered", "tool", "busy", "cooldown", "refused", "rejected", "error", "cancelled")
_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, float("inf"))
HealthCheck = Callable[[], tuple[bool, str]]


@dataclass
class Turn:
    """One turn as the metrics and the log line see it (never the message text)."""

    platform: str
    kind: str
    started: float = field(default_factory=time.monotonic)
    outcome: str = "error"
    tool: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_token: float | None = None
    retries: int = 0

    def mark_first_token(self) -> None:
        """Note the time to the first token (only the first call counts)."""
        if self.first_token is None:
            self.first_token = time.monotonic() - self.started


class _LiveNumbers(Collector):
    """Gauges read at scrape time: the backend's queue and batch, the conversation store."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry

    def collect(self) -> Iterator[Metric]:
        t = self._telemetry
        stats = t.backend_stats() if t.backend_stats else None
        yield GaugeMetricFamily(
            "hermes_bot_queue_depth", "Requests waiting for the model", stats and stats.queue_depth
        )
        yield GaugeMetricFamily(
            "hermes_bot_running_rows", "Requests being decoded together", stats and stats.running
        )
        if stats is not None and stats.kv_cache_used is not None:
            yield GaugeMetricFamily(
                "hermes_bot_kv_cache_usage", "Share of the KV cache in use", stats.kv_cache_used
            )
            yield CounterMetricFamily(
                "hermes_bot_kv_cache_preemptions",
                "Requests paused because the KV cache was full",
                stats.preempted,
            )
        up = GaugeMetricFamily(
            "hermes_bot_health", "1 when a health check passes", labels=["check"]
        )
        for name, (ok, _) in t.check_health().items():
            up.add_metric([name], 1.0 if ok else 0.0)
        yield up
        for name, (help_text, read) in t.gauges.items():
            family = CounterMetricFamily if name.endswith("_total") else GaugeMetricFamily
            yield family(name.removesuffix("_total"), help_text, read())


class Telemetry:
    """The bot's metrics, health checks and turn log."""

    def __init__(self, stuck_after: float = 300.0) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "hermes_bot_requests",
            "Turns by platform and outcome",
            ["platform", "outcome"],
            registry=r,
        )
        self.tokens = Counter("hermes_bot_tokens", "Tokens in and out", ["direction"], registry=r)
        self.time_to_first_token = Histogram(
            "hermes_bot_time_to_first_token_seconds",
            "From the message to the first token",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.turn_seconds = Histogram(
            "hermes_bot_turn_seconds",
            "From the message to the reply",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.parse_failures = Counter(
            "hermes_bot_parse_failures",
            "Unreadable call markup by parser stage",
            ["stage"],
            registry=r,
        )
        self.validation_failures = Counter(
            "hermes_bot_validation_failures",
            "Calls failing validation by tool",
            ["tool"],
            registry=r,
        )
        self.corrective_retries = Counter(
            "hermes_bot_corrective_retries",
            "Turns sent back to the model with the error",
            registry=r,
        )
        self.backend_errors = Counter(
            "hermes_bot_backend_errors", "Generations that failed in the backend", registry=r
        )
        self.backend_stats: Callable[[], BackendStats] | None = None
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self.checks: dict[str, HealthCheck] = {}
        self.counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self._stuck_after = stuck_after
        self._progress = (-1, time.monotonic())
        r.register(_LiveNumbers(self))

    # -- what happened ----------------------------------------------------------------------

    def turn(self, turn: Turn) -> None:
        """A turn ended: count it and log one line."""
        seconds = time.monotonic() - turn.started
        self.counts[turn.outcome] = self.counts.get(turn.outcome, 0) + 1
        self.requests.labels(turn.platform, turn.outcome).inc()
        self.tokens.labels("in").inc(turn.prompt_tokens)
        self.tokens.labels("out").inc(turn.completion_tokens)
        if turn.first_token is not None:
            self.time_to_first_token.observe(turn.first_token)
        self.turn_seconds.observe(seconds)
        ttft = f"{1000 * turn.first_token:.0f}" if turn.first_token is not None else "-"
        _log.info(
            "turn platform=%s kind=%s outcome=%s tool=%s tokens_in=%d tokens_out=%d "
            "retries=%d ttft_ms=%s total_ms=%.0f",
            turn.platform,
            turn.kind,
            turn.outcome,
            turn.tool or "-",
            turn.prompt_tokens,
            turn.completion_tokens,
            turn.retries,
            ttft,
            1000 * seconds,
        )

    def watch(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """Publish ``read()`` at every scrape (a counter when ``name`` ends in ``_total``)."""
        self.gauges[name] = (help_text, read)

    def watch_conversations(self, store: ConversationStore) -> None:
        """Publish the conversation store's size and its failed database calls."""
        self.watch("hermes_bot_conversations_cached", "Conversations in memory", store.__len__)
        self.watch("hermes_bot_conversation_memory_bytes", "History in memory", lambda: store.bytes)
        self.watch(
            "hermes_bot_storage_errors_total", "Failed database calls", lambda: store.storage_errors
        )

    def failed(self, turn: Turn, error: HermesBotError) -> None:
        """A turn ended in ``error``: the queue was full (busy), the input was rejected, or
        it failed (a backend error when generation did)."""
        turn.outcome = "busy" if isinstance(error, Busy) else "error"
        if isinstance(error, InputRejected):
            turn.outcome = "rejected"
        if isinstance(error, GenerationError):
            self.backend_errors.inc()

    def refused(self, platform: str, outcome: str) -> None:
        """A message turned away before the pipeline (``cooldown`` or ``refused``)."""
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        self.requests.labels(platform, outcome).inc()

    # -- health -----------------------------------------------------------------------------

    def connected(self, platform: str, is_connected: bool) -> None:
        """A platform connected or disconnected; ``/healthz`` follows."""
        state = "connected" if is_connected else "disconnected"
        self.checks[platform] = lambda: (is_connected, state)

    def _queue_check(self) -> tuple[bool, str]:
        if self.backend_stats is None:
            return True, "no backend"
        stats = self.backend_stats()
        if stats.device == "not loaded":
            return False, "model not loaded"
        if stats.servers and not any(server.state == "up" for server in stats.servers):
            return False, "no inference server is up"
        done = stats.completed + stats.failed
        now = time.monotonic()
        if done != self._progress[0] or not (stats.queue_depth or stats.running):
            self._progress = (done, now)
            return True, f"{stats.queue_depth} waiting, {stats.running} running"
        idle = now - self._progress[1]
        return idle < self._stuck_after, f"no request finished for {idle:.0f} s"

    def check_health(self) -> dict[str, tuple[bool, str]]:
        """Every check's (passed, detail); the model check covers loading and a stuck queue."""
        results = {name: check() for name, check in self.checks.items()}
        results["model"] = self._queue_check()
        return results

    def summary(self) -> str:
        """One line of turn counts, for /status and the periodic log line."""
        shown = (f"{self.counts[name]} {name}" for name in OUTCOMES if self.counts.get(name))
        return " · ".join(shown) or "no turns yet"


async def log_periodically(telemetry: Telemetry, interval: float) -> None:
    """Log a metrics line every ``interval`` seconds, busy or idle, until cancelled."""
    while True:
        await asyncio.sleep(interval)
        stats = telemetry.backend_stats() if telemetry.backend_stats else None
        queue = f" queue={stats.queue_depth} running={stats.running}" if stats else ""
        rate = f" tokens_per_s={stats.tokens_per_second:.1f}" if stats else ""
        _log.info("metrics turns: %s;%s%s", telemetry.summary(), queue, rate)


async def serve(telemetry: Telemetry, host: str, port: int) -> web.AppRunner:
    """Serve ``/metrics`` and ``/healthz`` on ``host:port``; call ``cleanup()`` to stop."""

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(telemetry.registry)
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})

    async def healthz(_: web.Request) -> web.Response:
        checks = telemetry.check_health()
        healthy = all(ok for ok, _ in checks.values())
        body = {
            "status": "ok" if healthy else "unhealthy",
            "checks": {name: {"ok": ok, "detail": detail} for name, (ok, detail) in checks.items()},
        }
        return web.json_response(body, status=200 if healthy else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    _log.info("metrics on http://%s:%d/metrics, health on /healthz", host, port)
    return runner


class JsonFormatter(logging.Formatter):
    """One JSON object per log record (time, level, logger, message, exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
