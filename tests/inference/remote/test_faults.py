"""What a user sees when a server errors, hangs or drops the stream; failover to a good one."""

from __future__ import annotations

import asyncio

import pytest

from hermes_bot.backend import GenerationParams, GenerationRequest
from hermes_bot.errors import PromptTooLong
from hermes_bot.pipeline import ErrorReply, Pipeline, TextReply, ToolReply
from tests.fakes import Screen
from tests.inference.remote.faulty_server import FaultyServer

UNREACHABLE = "The model server is unreachable right now. Please try again in a few minutes."
MID_ANSWER = "The model server stopped in the middle of my answer. Please try again."


@pytest.fixture
async def faulty():
    servers: list[FaultyServer] = []

    async def start(fault: str) -> FaultyServer:
        server = await FaultyServer(fault).start()  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@pytest.mark.parametrize(
    ("fault", "message"), [("error", UNREACHABLE), ("hang", UNREACHABLE), ("cut", MID_ANSWER)]
)
async def test_a_broken_only_server_gives_a_clear_message(faulty, make_remote, fault, message):
    server = await faulty(fault)
    backend, settings = await make_remote([server.url], read_timeout=0.5)
    pipeline = Pipeline.from_settings(backend, settings)
    reply = await pipeline.respond("chat", "hello", on_text=Screen())
    assert reply == ErrorReply(message)
    [status] = backend.stats().servers
    assert status.state == "down"
    assert status.last_error
    assert server.completions == 1  # not retried against the same broken server


@pytest.mark.parametrize("fault", ["error", "hang", "cut"])
async def test_requests_fail_over_from_a_broken_server_to_a_good_one(
    faulty, make_remote, llama_server, fault
):
    bad = await faulty(fault)
    # Long enough for the real server's first chunk on a loaded machine, short for the hang.
    backend, settings = await make_remote([bad.url, llama_server.url], read_timeout=3.0)
    pipeline = Pipeline.from_settings(backend, settings)
    replies = await asyncio.gather(
        pipeline.respond("a", "hello"),
        pipeline.respond("b", "hi", on_text=_ignore),
        pipeline.respond("c", "a joke", forced_tool="Joke"),
    )
    assert [type(r) for r in replies] == [TextReply, TextReply, ToolReply]
    bad_status, good_status = backend.stats().servers
    assert bad_status.state == "down"
    assert good_status.state == "up"


async def _ignore(text: str) -> None:
    pass


async def test_a_wrong_api_key_is_named_and_the_right_one_works(llama_servers, make_remote):
    server = llama_servers(api_key="sk-right")
    good, settings = await make_remote([server.url], api_key="sk-right")
    assert isinstance(await Pipeline.from_settings(good, settings).respond("a", "hi"), TextReply)
    bad, settings = await make_remote([server.url], api_key="sk-wrong")
    reply = await Pipeline.from_settings(bad, settings).respond("a", "hi")
    assert reply == ErrorReply(
        "The model server refused the bot's API key. Ask the bot's owner to check remote.api_key."
    )


async def test_a_prompt_the_server_cannot_fit_is_reported_as_too_long(llama_server, make_remote):
    backend, _ = await make_remote([llama_server.url])
    prompt = "<|im_start|>user\n" + "many words " * 3000 + "<|im_end|>\n<|im_start|>assistant\n"
    with pytest.raises(PromptTooLong):
        await backend.generate(GenerationRequest(prompt, GenerationParams(max_new_tokens=8)))
    assert backend.stats().servers[0].state == "up"  # the server is fine; the prompt was not
