"""The remote backend against a real llama.cpp server running the tiny model."""

from __future__ import annotations

import asyncio

from hermes_bot.backend import Constraint, GenerationParams, GenerationRequest
from hermes_bot.inference.remote.gbnf import gbnf
from hermes_bot.parsing import parse_completion
from hermes_bot.pipeline import Pipeline, TextReply, ToolReply
from hermes_bot.tools import TOOLS, BookRecommendation, Joke, SongRecommendation
from tests.fakes import Screen
from tests.inference.remote.conftest import post_json

PROMPT = "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
# Forced calls per tool; benchmarks/remote.py measures many more.
SAMPLES = 3


async def test_chat_streams_and_the_deltas_join_to_the_whole_reply(llama_server, make_remote):
    backend, settings = await make_remote([llama_server.url])
    pipeline = Pipeline.from_settings(backend, settings)
    screen = Screen()
    reply = await pipeline.respond("chat", "hello there", on_text=screen)
    assert isinstance(reply, TextReply)
    assert len(screen.shown) > 1  # streamed, not delivered at once
    assert reply.text == screen.shown[-1].strip()
    assert "<|im_end|>" not in reply.text and "<|im_start|>" not in reply.text
    [server] = backend.stats().servers
    assert (server.engine, server.state, server.completed) == ("llama.cpp", "up", 1)


async def test_context_window_and_engine_come_from_the_server(llama_server, make_remote):
    backend, _ = await make_remote([llama_server.url])
    assert backend.context_window == 2048  # the server's per-slot length, not a guess
    assert backend.stats().servers[0].engine == "llama.cpp"


async def test_forced_calls_are_valid_every_time(llama_server, make_remote):
    backend, settings = await make_remote(
        [llama_server.url],
        generation={"temperature": 1.0},
        chat={"corrective_retries": 0},
    )
    pipeline = Pipeline.from_settings(backend, settings)
    tools = [Joke, SongRecommendation, BookRecommendation] * SAMPLES
    replies = await asyncio.gather(
        *(pipeline.respond(f"k{i}", "go on", forced_tool=t.__name__) for i, t in enumerate(tools))
    )
    for tool, reply in zip(tools, replies, strict=True):
        assert isinstance(reply, ToolReply), reply
        assert [type(t) for t in reply.tools] == [tool]
    # One generation each: no corrective retry, no plain-text fallback was needed.
    assert backend.stats().completed == len(tools)


async def test_the_same_request_straight_to_the_server_is_the_same_text(llama_server, make_remote):
    backend, _ = await make_remote([llama_server.url])
    params = GenerationParams(max_new_tokens=16, do_sample=False)
    ours = await backend.generate(GenerationRequest(PROMPT, params))
    raw = post_json(
        f"{llama_server.url}/completions",
        {"prompt": PROMPT, "max_tokens": 16, "temperature": 0, "stop": ["<|im_end|>"]},
    )
    assert ours.text == raw["choices"][0]["text"]
    assert ours.completion_tokens == raw["usage"]["completion_tokens"]


async def test_auto_grammar_gives_text_or_complete_calls(llama_server, make_remote):
    backend, _ = await make_remote([llama_server.url])
    request = GenerationRequest(
        PROMPT, GenerationParams(max_new_tokens=48), Constraint("auto", "functioncall")
    )
    for _ in range(3):
        result = await backend.generate(request)
        parsed = parse_completion(result.text)
        assert parsed.errors == []
        assert result.text.strip()
        assert not result.text.lstrip().startswith("<") or parsed.calls


def test_the_call_grammars_compile_on_the_server(llama_server):
    tools = list(TOOLS.values())
    for dialect in ("functioncall", "tool_call"):
        for mode in ("forced", "auto"):
            answer = post_json(
                f"{llama_server.url}/completions",
                {"prompt": PROMPT, "max_tokens": 4, "grammar": gbnf(mode, dialect, tools)},
            )
            assert answer["choices"][0]["text"]


async def test_without_tokenizer_files_counts_are_calibrated_on_the_servers_tokenize(
    llama_server, make_remote, tiny_model_dir
):
    from hermes_bot.inference.remote.tokens import load_tokenizer_counter

    exact = load_tokenizer_counter(str(tiny_model_dir))
    assert exact is not None
    text = "A conversation about rainy days, old books and songs. " * 20
    for source in ("/no/such/directory", "no-such-org/no-such-model"):
        backend, _ = await make_remote([llama_server.url], tokenizer=source)
        # An estimate from /tokenize, on the safe side (never fewer tokens than there are).
        assert exact(text) <= backend.count_tokens(text) <= 1.5 * exact(text)
