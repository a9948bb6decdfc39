"""The in-process backend: loading, stops, batching equivalence, streaming, grammar hook."""

from __future__ import annotations

import asyncio
import gc
import itertools
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pytest
import torch

from hermes_bot.backend import Backend, Constraint, GenerationParams, GenerationRequest
from hermes_bot.config import ExecutorSettings, ModelSettings, Settings
from hermes_bot.errors import GenerationError, ModelLoadError
from hermes_bot.inference import worker
from hermes_bot.inference.transformers_backend import TransformersBackend
from tests.inference.conftest import GREEDY, chat

PROMPTS = [
    chat("hi"),
    chat("tell me a joke about a cat " * 6),
    chat("recommend a book"),
    chat("what is the weather like on the moon today? " * 3),
    chat("x"),
]


async def wait_until(condition: Any, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.01)


def wrap_forward(model: Any, after: Any) -> None:
    """Call ``after(kwargs, output)`` on every forward pass of ``model``."""
    original = model.forward

    def forward(**kwargs: Any) -> Any:
        output = original(**kwargs)
        after(kwargs, output)
        return output

    model.forward = forward


async def test_loads_with_from_pretrained_and_generates(make_backend, tiny_tokenizer) -> None:
    backend = await make_backend()
    assert isinstance(backend, Backend)
    result = await backend.generate(GenerationRequest(chat("hello")))
    assert result.finish_reason == "length"
    assert result.completion_tokens == GREEDY.max_new_tokens
    assert result.prompt_tokens == len(tiny_tokenizer(chat("hello")).input_ids)
    assert result.text
    stats = backend.stats()
    assert (stats.device, stats.completed, stats.generated_tokens) == ("cpu", 1, 12)
    assert stats.latency_p50_ms > 0 and stats.time_to_first_token_ms > 0


async def test_from_settings_uses_config_sections(tiny_model_dir: Path) -> None:
    settings = Settings(model=ModelSettings(id=str(tiny_model_dir), context_window=300))
    backend = TransformersBackend.from_settings(settings)
    assert backend.context_window == 300
    assert backend.stats().model == str(tiny_model_dir)


async def test_count_tokens_counts_text_tokens(make_backend, tiny_tokenizer) -> None:
    backend = await make_backend()
    text = "The quick brown fox jumps over the lazy dog."
    expected = len(tiny_tokenizer(text, add_special_tokens=False).input_ids)
    assert backend.count_tokens(text) == expected
    assert backend.count_tokens("<|im_start|>") > 1  # special-token strings count as text


@pytest.mark.parametrize("use_stream", [False, True])
async def test_stops_at_im_end_and_hides_it(models, make_backend, use_stream: bool) -> None:
    backend = await make_backend(defaults=GenerationParams(max_new_tokens=50, do_sample=False))
    calls = {"n": 0}

    def eos_on_fifth_step(kwargs: dict[str, Any], output: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 5:  # prefill + 4 decode steps = 5 tokens, then <|im_end|>
            output.logits[:, -1, 32000] = 1e4

    wrap_forward(models[-1], eos_on_fifth_step)
    request = GenerationRequest(chat("hello"))
    if use_stream:
        text = "".join([delta async for delta in backend.stream(request)])
    else:
        result = await backend.generate(request)
        assert (result.finish_reason, result.completion_tokens) == ("stop", 4)
        text = result.text
    assert text
    assert "<|im_end|>" not in text


async def test_greedy_batched_equals_plain_generate(make_backend, reference) -> None:
    backend = await make_backend(max_batch_size=8)
    lengths = [12, 7, 20, 3, 15]
    expected = [reference(p, n) for p, n in zip(PROMPTS, lengths, strict=True)]
    requests = [
        GenerationRequest(p, GenerationParams(max_new_tokens=n, do_sample=False))
        for p, n in zip(PROMPTS, lengths, strict=True)
    ]
    alone = [await backend.generate(r) for r in requests]
    together = await asyncio.gather(*(backend.generate(r) for r in requests))
    assert [r.text for r in alone] == expected
    assert [r.text for r in together] == expected
    assert [r.completion_tokens for r in together] == lengths


async def test_requests_joining_a_running_batch_match_plain_generate(
    make_backend, reference
) -> None:
    backend = await make_backend(max_batch_size=8, batch_wait_ms=0)
    first = GenerationRequest(PROMPTS[1], GenerationParams(max_new_tokens=40, do_sample=False))
    stream = backend.stream(first)
    deltas = [await anext(stream)]  # the first request is decoding now
    # A sampling row shares the batch with greedy rows without changing them.
    sampled = GenerationRequest(PROMPTS[0], GenerationParams(max_new_tokens=9, top_k=5))
    late = [
        GenerationRequest(p, GenerationParams(max_new_tokens=10, do_sample=False))
        for p in PROMPTS[2:]
    ]
    results = asyncio.gather(*(backend.generate(r) for r in [sampled, *late]))
    deltas += [delta async for delta in stream]
    done = await results
    assert "".join(deltas) == reference(PROMPTS[1], 40)
    assert [r.text for r in done[1:]] == [reference(p, 10) for p in PROMPTS[2:]]
    assert done[0].completion_tokens == 9


async def test_stream_deltas_join_to_the_full_text(make_backend) -> None:
    backend = await make_backend(defaults=GenerationParams(max_new_tokens=40, do_sample=False))
    for prompt in PROMPTS[:3]:
        full = await backend.generate(GenerationRequest(prompt))
        deltas = [d async for d in backend.stream(GenerationRequest(prompt))]
        assert "".join(deltas) == full.text
        assert all(deltas) and not any("\ufffd" in d and d.endswith("\ufffd") for d in deltas[:-1])


async def test_unload_then_reload(models, make_backend, monkeypatch) -> None:
    backend = await make_backend()
    before = await backend.generate(GenerationRequest(chat("again")))
    model = weakref.ref(models.pop())
    freed: list[bool] = []

    def free_memory(device: Any) -> None:
        gc.collect()
        freed.append(model() is None)  # nothing may hold the model when memory is given back

    monkeypatch.setattr(worker, "free_memory", free_memory)
    await backend.unload()
    assert freed == [True]
    with pytest.raises(GenerationError):
        await backend.generate(GenerationRequest(chat("again")))
    await backend.reload()
    after = await backend.generate(GenerationRequest(chat("again")))
    assert after.text == before.text


@pytest.mark.parametrize("model_id", ["no-such-org/no-such-model", "/nonexistent/model/dir"])
async def test_bad_model_id_names_it(model_id: str) -> None:
    backend = TransformersBackend(ModelSettings(id=model_id), ExecutorSettings(), GREEDY)
    with pytest.raises(ModelLoadError) as caught:
        await backend.start()
    assert model_id in str(caught.value)
    assert "model.id" in str(caught.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
async def test_cuda_without_gpu_is_a_clear_load_error(tiny_model_dir: Path) -> None:
    settings = ModelSettings(id=str(tiny_model_dir), device="cuda")
    backend = TransformersBackend(settings, ExecutorSettings(), GREEDY)
    with pytest.raises(ModelLoadError, match="no CUDA GPU"):
        await backend.start()


async def test_quantization_without_gpu_is_a_clear_load_error(tiny_model_dir: Path) -> None:
    settings = ModelSettings(id=str(tiny_model_dir), device="cpu", quantization="4bit")
    backend = TransformersBackend(settings, ExecutorSettings(), GREEDY)
    with pytest.raises(ModelLoadError, match="quantization"):
        await backend.start()


class ForcedMatcher:
    """Allows exactly ``tokens`` in order, then reports finished."""

    def __init__(self, tokens: list[int]) -> None:
        self.tokens, self.consumed = tokens, []

    def consume(self, token: int) -> None:
        assert token == self.tokens[len(self.consumed)]
        self.consumed.append(token)

    def is_finished(self) -> bool:
        return self.consumed == self.tokens


class FakeCompiler:
    """Grammar compiler stand-in: a forced token sequence per constrained request."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokens = tokenizer(" forced answer", add_special_tokens=False).input_ids
        self.masked_rows: list[list[bool]] = []

    def matcher(self, constraint: Constraint) -> ForcedMatcher:
        return ForcedMatcher(list(self.tokens))

    def fill_masks(self, logits: torch.Tensor, matchers: list[ForcedMatcher | None]) -> None:
        self.masked_rows.append([m is not None for m in matchers])
        for row, matcher in enumerate(matchers):
            if matcher is not None:
                allowed = matcher.tokens[len(matcher.consumed)]
                keep = logits[row, allowed].clone()
                logits[row] = float("-inf")
                logits[row, allowed] = keep


async def test_grammar_hook_constrains_only_its_row(make_backend, reference) -> None:
    compilers: list[FakeCompiler] = []

    def factory(tokenizer: Any) -> FakeCompiler:
        compilers.append(FakeCompiler(tokenizer))
        return compilers[-1]

    backend = await make_backend(grammar_factory=factory, batch_wait_ms=100, max_batch_size=2)
    forced = GenerationRequest(
        chat("joke please"),
        GenerationParams(max_new_tokens=30, temperature=1.0),
        constraint=Constraint(mode="forced", tools=("Joke",)),
    )
    free = GenerationRequest(PROMPTS[2], GenerationParams(max_new_tokens=12, do_sample=False))
    constrained, unconstrained = await asyncio.gather(
        backend.generate(forced), backend.generate(free)
    )
    assert len(compilers) == 1
    assert constrained.text == "forced answer"
    assert constrained.finish_reason == "stop"
    assert unconstrained.text == reference(PROMPTS[2], 12)
    # Each mask call constrained exactly one row, also while both rows decoded together.
    assert all(rows.count(True) == 1 for rows in compilers[0].masked_rows)
    assert any(len(rows) == 2 for rows in compilers[0].masked_rows)
    # Once the constrained row finished, the free row decoded without any mask call.
    assert len(compilers[0].masked_rows) == len(compilers[0].tokens)


SYSTEM = (
    "<|im_start|>system\n" + "You are a helpful assistant who knows jokes. " * 12 + "<|im_end|>\n"
)


async def test_a_shared_system_prompt_is_prefilled_once(make_backend, reference) -> None:
    backend = await make_backend(max_batch_size=4)
    prompts = [SYSTEM + chat(question) for question in ("a joke", "a song", "a book")]
    first = await backend.generate(GenerationRequest(prompts[0]))
    computed = backend.metrics.snapshot().prefill_tokens
    assert computed == first.prompt_tokens  # nothing cached yet
    rest = await asyncio.gather(*(backend.generate(GenerationRequest(p)) for p in prompts[1:]))
    numbers = backend.metrics.snapshot()
    shared = len(backend.tokenizer(SYSTEM).input_ids)
    assert numbers.prefill_tokens - computed <= sum(r.prompt_tokens for r in rest) - 2 * (
        shared - 16
    )
    assert numbers.cached_prompt_tokens >= 2 * (shared - 16)
    assert [r.text for r in (first, *rest)] == [reference(p, 12) for p in prompts]


async def test_a_long_joining_prompt_does_not_stall_running_rows(
    models, make_backend, reference
) -> None:
    backend = await make_backend(prefill_chunk=16, prefix_cache_tokens=0, batch_wait_ms=0)
    shapes: list[tuple[int, int]] = []
    gate = threading.Event()  # holds the running row's third pass until the long prompt waits
    original = models[-1].forward

    def forward(**kwargs: Any) -> Any:
        shapes.append(tuple(kwargs["input_ids"].shape))
        if len(shapes) == 3:
            gate.wait(30)
        return original(**kwargs)

    models[-1].forward = forward
    running = GenerationRequest(PROMPTS[0], GenerationParams(max_new_tokens=30, do_sample=False))
    first = asyncio.create_task(backend.generate(running))
    await wait_until(lambda: len(shapes) == 3)
    long_prompt = chat("tell me a long story about the sea " * 8)
    joining = asyncio.create_task(backend.generate(GenerationRequest(long_prompt)))
    await wait_until(lambda: backend.stats().queue_depth == 1)
    gate.set()
    done, joined = await first, await joining
    assert done.text == reference(PROMPTS[0], 30)
    assert joined.text == reference(long_prompt, 12)
    chunks = [i for i, shape in enumerate(shapes) if i > 0 and shape[0] == 1 and shape[1] > 1]
    assert len(chunks) == -(-joined.prompt_tokens // 16)
    assert all(shapes[i][1] <= 16 for i in chunks)
    # The running row decoded (a one-token pass) between consecutive chunks of the prompt.
    assert all((1, 1) in shapes[a:b] for a, b in itertools.pairwise(chunks)), shapes


async def test_compiled_decode_step_is_token_identical_and_compiles_once_per_shape(
    make_backend, reference, monkeypatch
) -> None:
    graphs: list[Any] = []

    def count_graphs(graph: Any, example_inputs: Any) -> Any:
        graphs.append(graph)
        return graph.forward  # run the captured graph as it is (no code generation)

    real_compile = torch.compile
    monkeypatch.setattr(
        torch, "compile", lambda fn, **kw: real_compile(fn, backend=count_graphs, dynamic=False)
    )
    backend = await make_backend(compile=True, max_batch_size=4, batch_wait_ms=200)
    try:
        first = await asyncio.gather(*(backend.generate(GenerationRequest(p)) for p in PROMPTS[2:]))
        compiled = len(graphs)
        # Same batch-size and width buckets: nothing is compiled again.
        again = await asyncio.gather(
            *(backend.generate(GenerationRequest(p)) for p in PROMPTS[:1] + PROMPTS[2:4])
        )
    finally:
        torch._dynamo.reset()
    assert 1 <= compiled <= 2
    assert len(graphs) == compiled
    assert [r.text for r in first] == [reference(p, 12) for p in PROMPTS[2:]]
    assert [r.text for r in again] == [reference(p, 12) for p in PROMPTS[:1] + PROMPTS[2:4]]
