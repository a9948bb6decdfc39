"""A second real engine: ``transformers serve`` (no [DONE], rejects unknown fields with 422)."""

from __future__ import annotations

import logging

from hermes_bot.backend import Constraint, GenerationParams, GenerationRequest
from hermes_bot.pipeline import Pipeline, TextReply
from tests.fakes import Screen

PROMPT = "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"


async def test_chat_streams_from_transformers_serve(transformers_server, make_remote):
    backend, settings = await make_remote(
        [transformers_server.url], model=transformers_server.model
    )
    pipeline = Pipeline.from_settings(backend, settings)
    screen = Screen()
    reply = await pipeline.respond("chat", "hello there", on_text=screen)
    assert isinstance(reply, TextReply)
    assert screen.shown and reply.text == screen.shown[-1].strip()
    [server] = backend.stats().servers
    assert (server.engine, server.state, server.completed) == ("generic", "up", 1)


async def test_fields_it_rejects_are_dropped_and_the_request_is_retried(
    transformers_server, make_remote, caplog
):
    # Told it is llama.cpp, the bot sends top_k, repeat_penalty and a grammar: 422.
    backend, _ = await make_remote(
        [transformers_server.url], model=transformers_server.model, engine="llama.cpp"
    )
    request = GenerationRequest(
        PROMPT,
        GenerationParams(max_new_tokens=8, top_k=5, repetition_penalty=1.2),
        Constraint("auto", "functioncall"),
    )
    with caplog.at_level(logging.WARNING):
        first = await backend.generate(request)
        second = await backend.generate(request)
    assert first.text and second.text
    # max_tokens was honoured. The server reports no usage, so the count is the text
    # tokenized again, which can split a generated token in two ("tyardtyard").
    assert first.finish_reason == "length" and first.completion_tokens <= 8 + 2
    rejected = [r for r in caplog.records if "sending it only OpenAI fields" in r.message]
    assert len(rejected) == 1  # remembered: the second request went out plain at once
    [server] = backend.stats().servers
    assert (server.state, server.completed) == ("up", 2)
