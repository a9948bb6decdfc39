"""The /status numbers as labelled values, shared by every platform's status card."""

from __future__ import annotations

from hermes_bot.backend import BackendStats, ServerStatus


def duration(seconds: float) -> str:
    """``1d 2h 3m 4s`` style, leading zero units left out."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if days or hours else []
    return " ".join([*parts, f"{minutes}m", f"{secs}s"])


def status_fields(
    stats: BackendStats, uptime: float, history: int, turns: str = ""
) -> list[tuple[str, str]]:
    """(label, value) pairs: model, device, queue, speed, latency, uptime, conversation,
    turns, the in-process KV cache, and each inference server behind a remote backend."""
    return [
        ("Model", stats.model),
        ("Device", stats.device),
        ("Queue", f"{stats.queue_depth} waiting · {stats.running} running"),
        ("Speed", f"{stats.tokens_per_second:.1f} tokens/s"),
        ("Latency", f"p50 {stats.latency_p50_ms:.0f} ms · p95 {stats.latency_p95_ms:.0f} ms"),
        ("Uptime", duration(uptime)),
        ("This conversation", f"{history} messages remembered"),
        ("Turns since start", turns or "none yet"),
        *([("KV cache", _kv_cache(stats))] if stats.kv_cache_used is not None else []),
        *([("Servers", _servers(stats.servers))] if stats.servers else []),
    ]


def _kv_cache(stats: BackendStats) -> str:
    """How full the in-process KV cache is, and how often it was too full."""
    used = f"{stats.kv_cache_used:.0%} in use"
    return f"{used} · {stats.preempted} paused for room" if stats.preempted else used


def _servers(servers: tuple[ServerStatus, ...]) -> str:
    """One line per inference server: its state, engine and load, or why it is down."""
    lines = []
    for server in servers:
        if server.state == "up":
            detail = f"up · {server.engine} · {server.in_flight} in flight"
        else:
            detail = f"down · {server.last_error[:80]}"
        lines.append(f"{server.url} — {detail}")
    return "\n".join(lines)
