"""The /status fields every platform shows."""

from __future__ import annotations

from hermes_bot.adapters.status import status_fields
from hermes_bot.backend import BackendStats


def test_the_kv_cache_line_shows_use_and_pauses_for_the_in_process_backend_only() -> None:
    local = BackendStats("m", "cuda:0", kv_cache_used=0.345, preempted=2)
    fields = dict(status_fields(local, uptime=61, history=3))
    assert fields["KV cache"] == "34% in use · 2 paused for room"
    quiet = dict(status_fields(BackendStats("m", "cuda:0", kv_cache_used=0.5), 1, 0))
    assert quiet["KV cache"] == "50% in use"
    remote = dict(status_fields(BackendStats("m", "remote"), uptime=1, history=0))
    assert "KV cache" not in remote
