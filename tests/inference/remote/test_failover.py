"""Two real llama.cpp servers, one killed mid-run: no reply is lost; it is probed back in."""

from __future__ import annotations

import asyncio

from hermes_bot.pipeline import ErrorReply, Pipeline, TextReply, ToolReply
from tests.inference.remote.test_faults import UNREACHABLE


async def _until(predicate, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_killing_a_server_mid_run_loses_no_reply_and_it_comes_back(
    llama_servers, make_remote
):
    # Three slots each: the first server gets three of the five requests and all of them
    # start at once. With two, one waited for a slot, and when it was a chat its first text
    # could come after the other server had finished its work, so the moment to kill
    # (both busy, every chat on screen) never came.
    first, second = llama_servers(slots=3), llama_servers(slots=3)
    backend, settings = await make_remote(
        [first.url, second.url],
        probe_interval=0.2,
        generation={"max_new_tokens": 160},
    )
    pipeline = Pipeline.from_settings(backend, settings)
    shown: dict[str, list[str]] = {}

    def collector(key: str):
        async def on_text(text: str) -> None:
            shown.setdefault(key, []).append(text)

        return on_text

    chats = [
        pipeline.respond(f"chat{i}", "tell me a long story", on_text=collector(f"chat{i}"))
        for i in range(3)
    ]
    calls = [pipeline.respond(f"call{i}", "a joke", forced_tool="Joke") for i in range(2)]
    answers = asyncio.gather(*chats, *calls)
    # Kill the first server while both have answers in flight and every chat is on screen.
    await _until(lambda: all(s.in_flight for s in backend.stats().servers) and len(shown) == 3)
    first.kill()
    replies = await answers
    assert [type(r) for r in replies] == [TextReply] * 3 + [ToolReply] * 2, replies
    states = {s.url: s for s in backend.stats().servers}
    assert states[first.url].state == "down"
    assert states[second.url].completed >= 3

    # The killed server restarts on its port and is probed back into rotation.
    revived = llama_servers(port=first.port)
    await _until(lambda: backend.stats().servers[0].state == "up")
    second.kill()
    reply = await pipeline.respond("after", "hello again")
    assert isinstance(reply, TextReply)

    revived.kill()
    reply = await pipeline.respond("gone", "anyone there?")
    assert reply == ErrorReply(UNREACHABLE)
