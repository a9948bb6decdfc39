"""The bot's overhead over a raw llama.cpp server, and forced-call validity through it.

python benchmarks/remote.py [--quick]

Starts llama.cpp's server (xllamacpp) on the tiny test model converted to
GGUF, then sends the same load twice, alternating rounds, in one run:
straight to the server (one streamed /v1/completions per message) and
through the bot (Pipeline.respond with streaming, which builds the prompt,
calls the remote backend, parses and validates). Same prompts, greedy, same
token counts. Prints ``bot_overhead=R`` (bot wall time / raw wall time), then
``forced_valid=P`` over N forced calls (corrective retries off) and the
server's start time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hermes_bot.call_format import STOP_TOKENS
from hermes_bot.config import Settings
from hermes_bot.inference.remote import RemoteBackend
from hermes_bot.pipeline import Pipeline, ToolReply
from hermes_bot.prompts import Message, build_prompt, neutralize, system_prompt
from tests.inference.remote.gguf_export import export_gguf
from tests.inference.remote.servers import start_llama_server
from tests.tiny_model import build_tiny_model

TOKENS = 48


async def _raw_one(session: aiohttp.ClientSession, url: str, prompt: str) -> int:
    body = {"prompt": prompt, "max_tokens": TOKENS, "temperature": 0, "stream": True}
    body["stop"] = list(STOP_TOKENS)
    chunks = 0
    async with session.post(f"{url}/completions", json=body) as response:
        async for line in response.content:
            chunks += line.startswith(b"data:")
    return chunks


async def _round(users: int, per_user: int, one) -> float:
    started = time.perf_counter()

    async def user(index: int) -> None:
        for turn in range(per_user):
            await one(index, turn)

    await asyncio.gather(*(user(i) for i in range(users)))
    return time.perf_counter() - started


async def main(quick: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix="hermes-remote-bench-"))
    model_dir = build_tiny_model(work / "model")
    gguf = export_gguf(model_dir, work / "tiny.gguf")
    server = start_llama_server(gguf, work, slots=4, slot_tokens=2048)
    print(f"llama_server_start_s={server.started_in:.2f}")
    settings = Settings(
        model={"id": str(model_dir), "context_window": 2048},
        generation={"max_new_tokens": TOKENS, "do_sample": False},
        chat={"corrective_retries": 0},
        remote={"urls": [server.url]},
    )
    backend = RemoteBackend.from_settings(settings)
    await backend.start()
    pipeline = Pipeline.from_settings(backend, settings)
    users, per_user, rounds = (4, 3, 2) if quick else (8, 5, 3)
    system = neutralize(system_prompt(pipeline.dialect))

    def message(index: int, turn: int) -> str:
        return f"message {turn} from user {index}: tell me something"

    def raw_prompt(index: int, turn: int) -> str:
        user = [Message("user", message(index, turn))]
        return build_prompt(system, [], user, count_tokens=backend.count_tokens, budget=10**6)

    raw_total = bot_total = 0.0
    try:
        # A fresh connection per request: llama.cpp closes it after each streamed answer.
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True)
        ) as session:

            async def raw(index: int, turn: int) -> None:
                await _raw_one(session, server.url, raw_prompt(index, turn))

            async def via_bot(index: int, turn: int) -> None:
                pipeline.reset(f"u{index}")  # same prompt as the raw request: no history

                async def shown(text: str) -> None:
                    pass

                await pipeline.respond(f"u{index}", message(index, turn), on_text=shown)

            await _round(users, 1, raw)  # warm the server's prompt cache for both sides
            for _ in range(rounds):
                raw_total += await _round(users, per_user, raw)
                bot_total += await _round(users, per_user, via_bot)
        requests = users * per_user * rounds
        print(f"requests_each={requests} raw_s={raw_total:.2f} bot_s={bot_total:.2f}")
        print(f"bot_overhead={bot_total / raw_total:.3f}")

        samples = 30 if quick else 150
        forced = Settings(
            **{**settings.model_dump(), "generation": {"temperature": 1.0}},
        )
        forced_pipeline = Pipeline.from_settings(backend, forced)
        names = ["Joke", "SongRecommendation", "BookRecommendation"]
        valid = 0
        for start in range(0, samples, 6):
            replies = await asyncio.gather(
                *(
                    forced_pipeline.respond(f"f{i}", "go on", forced_tool=names[i % 3])
                    for i in range(start, min(start + 6, samples))
                )
            )
            valid += sum(isinstance(r, ToolReply) for r in replies)
        print(f"forced_valid={valid / samples:.3f} over {samples} (llama.cpp, GBNF)")
    finally:
        await backend.close()
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller load (under a minute)")
    asyncio.run(main(parser.parse_args().quick))
