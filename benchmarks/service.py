"""Service costs: conversation writes under a burst, and a Prometheus scrape.

    python benchmarks/service.py [--burst 500] [--scrapes 200]

A burst of turns finishing at once each record their exchange (SQLite, WAL,
one writer thread) while a ticker measures how late the event loop runs; the
same burst against the memory-only store gives the ratio. Then ``/metrics`` is
scraped over HTTP after 10,000 recorded turns. Ends with ``name=value`` lines.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hermes_bot.conversation import ConversationStore
from hermes_bot.observability import Telemetry, Turn, serve
from hermes_bot.storage import SQLiteStore

QUESTION = "alice: " + "what would you recommend for a rainy evening? " * 8
ANSWER = "Here is an idea for a quiet evening. " * 30


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _loop_lag(stop: asyncio.Event, lags: list[float], period: float = 0.001) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(period)
        lags.append(time.perf_counter() - start - period)


async def burst(store: ConversationStore, turns: int) -> tuple[list[float], float, float]:
    """Per-write latencies (s), total seconds, and the worst event-loop lag (s)."""
    keys = [f"discord:channel:{i % 50}" for i in range(turns)]
    for key in set(keys):
        await store.history(key)
    latencies: list[float] = []

    async def one(i: int) -> None:
        start = time.perf_counter()
        await store.record(keys[i], f"discord:{i % 97}", QUESTION, ANSWER)
        latencies.append(time.perf_counter() - start)

    lags: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(_loop_lag(stop, lags))
    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(turns)))
    total = time.perf_counter() - start
    stop.set()
    await ticker
    return latencies, total, max(lags, default=0.0)


async def scrape(scrapes: int) -> tuple[float, int]:
    """Median seconds per HTTP scrape of /metrics after 10,000 turns, and the body size."""
    telemetry = Telemetry()
    telemetry.watch_conversations(ConversationStore())
    outcomes = ("answered", "tool", "busy", "cooldown", "error")
    for i in range(10_000):
        turn = Turn(("discord", "slack")[i % 2], "channel", outcome=outcomes[i % 5])
        turn.prompt_tokens, turn.completion_tokens, turn.first_token = 800, 60, 0.2
        telemetry.turn(turn)
        telemetry.parse_failures.labels(("tag", "fence", "json")[i % 3]).inc()
    runner = await serve(telemetry, "127.0.0.1", 0)
    port = runner.addresses[0][1]
    times = []
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(scrapes):
                start = time.perf_counter()
                async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                    body = await response.read()
                times.append(time.perf_counter() - start)
    finally:
        await runner.cleanup()
    return statistics.median(times), len(body)


async def main(turns: int, scrapes: int) -> None:
    import logging

    logging.disable(logging.INFO)  # the turn log line is not what is measured here
    with tempfile.TemporaryDirectory() as directory:
        storage = SQLiteStore(Path(directory) / "c.db", max_exchanges=20)
        disk = ConversationStore(20, storage=storage)
        await disk.open()
        try:
            sqlite_lat, sqlite_total, sqlite_lag = await burst(disk, turns)
        finally:
            await disk.close()
    _, memory_total, memory_lag = await burst(ConversationStore(20), turns)
    scrape_s, size = await scrape(scrapes)

    print(f"burst of {turns} exchanges recorded at once (50 conversations, ~1.5 KB each)")
    p50, p99 = (1000 * _percentile(sqlite_lat, q) for q in (0.5, 0.99))
    print(
        f"  sqlite: {turns / sqlite_total:,.0f} writes/s, latency p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms (queued behind the burst), worst loop lag {1000 * sqlite_lag:.1f} ms"
    )
    print(
        f"  memory: {turns / memory_total:,.0f} writes/s, worst loop lag {1000 * memory_lag:.1f} ms"
    )
    print(f"/metrics over HTTP after 10,000 turns: {1000 * scrape_s:.2f} ms median, {size:,} bytes")
    print(f"sqlite_writes_per_s={turns / sqlite_total:.0f}")
    print(f"sqlite_write_p50_ms={p50:.2f}")
    print(f"sqlite_write_p99_ms={p99:.2f}")
    print(f"sqlite_burst_loop_lag_max_ms={1000 * sqlite_lag:.2f}")
    print(f"memory_vs_sqlite_write_rate={(turns / memory_total) / (turns / sqlite_total):.1f}")
    print(f"scrape_ms={1000 * scrape_s:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=500, help="exchanges recorded at once")
    parser.add_argument("--scrapes", type=int, default=200, help="scrapes to time")
    args = parser.parse_args()
    asyncio.run(main(args.burst, args.scrapes))
