"""Turn metrics, the turn log line (never the message text), the periodic line, JSON logs."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from hermes_bot.backend import BackendStats, ServerStatus
from hermes_bot.config import Settings
from hermes_bot.conversation import Context, Speaker
from hermes_bot.errors import Busy, GenerationError
from hermes_bot.observability import JsonFormatter, Telemetry, log_periodically
from hermes_bot.pipeline import Pipeline
from tests.fakes import ScriptedBackend
from tests.test_pipeline import EMPTY_INTEREST, SONG


def _value(telemetry: Telemetry, name: str, **labels: str) -> float:
    return telemetry.registry.get_sample_value(name, labels) or 0.0


async def test_a_turn_is_counted_and_logged_without_its_text(caplog: pytest.LogCaptureFixture):
    backend = ScriptedBackend([EMPTY_INTEREST, SONG])
    pipeline = Pipeline.from_settings(backend, Settings())
    context = Context("discord", "channel", Speaker("discord:31", "alice"), ("1",))
    with caplog.at_level(logging.INFO):
        await pipeline.respond("k", "a secret song wish", context=context)
    t = pipeline.telemetry
    assert _value(t, "hermes_bot_requests_total", platform="discord", outcome="tool") == 1
    assert _value(t, "hermes_bot_validation_failures_total", tool="SongRecommendation") == 1
    assert _value(t, "hermes_bot_corrective_retries_total") == 1
    assert _value(t, "hermes_bot_tokens_total", direction="out") == sum(
        backend.count_tokens(text) for text in (EMPTY_INTEREST, SONG)
    )
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("turn ")]
    assert "platform=discord kind=channel outcome=tool tool=SongRecommendation" in line
    assert "retries=1" in line
    assert all("secret" not in r.getMessage() for r in caplog.records)


class _FailingBackend(ScriptedBackend):
    def __init__(self, error: Exception) -> None:
        super().__init__([])
        self.error = error

    async def generate(self, request):
        raise self.error

    async def stream(self, request):
        raise self.error
        yield ""


@pytest.mark.parametrize(
    ("error", "outcome", "backend_errors"),
    [(Busy("queue full"), "busy", 0), (GenerationError("worker died"), "error", 1)],
)
async def test_busy_and_backend_failures_have_their_outcome(error, outcome, backend_errors):
    pipeline = Pipeline.from_settings(_FailingBackend(error), Settings())
    await pipeline.respond("k", "hello")
    t = pipeline.telemetry
    assert _value(t, "hermes_bot_requests_total", platform="console", outcome=outcome) == 1
    assert _value(t, "hermes_bot_backend_errors_total") == backend_errors
    assert t.summary() == f"1 {outcome}"


async def test_unreadable_markup_is_counted_by_parser_stage():
    broken = [
        "<tool_call>not json</tool_call>",
        '```json\n{"name": 1, "arguments": [}\n```',
        "Sorry.",
    ]
    pipeline = Pipeline.from_settings(ScriptedBackend(broken), Settings())
    await pipeline.respond("k", "joke please")
    t = pipeline.telemetry
    assert _value(t, "hermes_bot_parse_failures_total", stage="tag") == 1
    assert _value(t, "hermes_bot_parse_failures_total", stage="fence") == 1


async def test_the_metrics_line_is_logged_periodically_even_when_busy(caplog):
    telemetry = Telemetry()
    telemetry.backend_stats = ScriptedBackend([]).stats
    telemetry.refused("discord", "cooldown")
    with caplog.at_level(logging.INFO):
        ticker = asyncio.create_task(log_periodically(telemetry, 0.01))
        try:
            async with asyncio.timeout(5):
                while sum(r.getMessage().startswith("metrics") for r in caplog.records) < 2:
                    await asyncio.sleep(0.01)
        finally:
            ticker.cancel()
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("metrics"))
    assert "1 cooldown" in line and "queue=0 running=0" in line


def test_json_logs_are_one_object_per_line():
    record = logging.LogRecord("hermes_bot.x", logging.WARNING, __file__, 1, "a %s", ("b",), None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "WARNING" and entry["message"] == "a b"
    assert entry["logger"] == "hermes_bot.x"


def test_a_stuck_queue_fails_the_health_check(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("hermes_bot.observability.time.monotonic", lambda: now[0])
    stats = BackendStats(model="m", device="cpu", queue_depth=3, running=1, completed=5)
    telemetry = Telemetry(stuck_after=60)
    telemetry.backend_stats = lambda: stats
    assert telemetry.check_health()["model"][0]
    now[0] += 59
    assert telemetry.check_health()["model"][0]
    now[0] += 2  # requests waiting and none finished for over a minute
    assert telemetry.check_health()["model"] == (False, "no request finished for 61 s")
    stats = BackendStats(model="m", device="cpu", queue_depth=3, running=1, completed=6)
    assert telemetry.check_health()["model"][0]  # progress again


def test_json_logs_can_go_to_a_file(tmp_path):
    log = tmp_path / "bot.log"
    script = (
        "import logging\n"
        "from pathlib import Path\n"
        "from hermes_bot.cli import setup_logging\n"
        f"setup_logging('INFO', Path({str(log)!r}), 'json')\n"
        "logging.getLogger('hermes_bot.test').warning('disk %s', 'full')\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    [line] = log.read_text().splitlines()
    entry = json.loads(line)
    assert entry["message"] == "disk full" and entry["logger"] == "hermes_bot.test"


def test_a_remote_backend_with_every_server_down_is_unhealthy():
    down = ServerStatus("http://gpu-1:8000/v1", "down", "vllm", last_error="refused")
    up = ServerStatus("http://gpu-2:8000/v1", "up", "vllm")
    telemetry = Telemetry()
    servers = [(down, down)]
    telemetry.backend_stats = lambda: BackendStats("m", "remote", servers=servers[-1])
    assert telemetry.check_health()["model"] == (False, "no inference server is up")
    servers.append((down, up))
    assert telemetry.check_health()["model"][0]


def test_the_kv_cache_is_scraped_when_the_backend_has_one():
    from prometheus_client import generate_latest

    telemetry = Telemetry()
    telemetry.backend_stats = lambda: BackendStats("m", "cpu", kv_cache_used=0.25, preempted=2)
    text = generate_latest(telemetry.registry).decode()
    assert "hermes_bot_kv_cache_usage 0.25" in text
    assert "hermes_bot_kv_cache_preemptions_total 2.0" in text
    telemetry.backend_stats = lambda: BackendStats("m", "remote")
    assert "kv_cache" not in generate_latest(telemetry.registry).decode()
