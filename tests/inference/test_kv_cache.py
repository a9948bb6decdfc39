"""The paged KV cache: blocks per row's own length, shared prefix blocks, preemption."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import pytest
import torch

from hermes_bot.backend import GenerationParams, GenerationRequest
from hermes_bot.config import ExecutorSettings
from hermes_bot.errors import ModelLoadError
from hermes_bot.inference.kv_cache import (
    BLOCK,
    SCRATCH,
    PagedCache,
    PrefixCache,
    blocks_for,
    pool_tokens,
)
from tests.inference.conftest import chat
from tests.inference.test_executor import before_forward, wait_until


def pool(blocks: int = 9, slots: int = 4) -> PagedCache:
    return PagedCache(layers=1, blocks=blocks, slots=slots, row_blocks=8, kv_heads=1, head_dim=2)


def test_a_row_takes_blocks_for_its_own_length_and_gives_them_back() -> None:
    cache = pool()
    cache.assign(0, [], 3 * BLOCK + 1)
    cache.assign(1, [], 1)
    assert len(cache.owned(0)) == 4 and len(cache.owned(1)) == 1
    assert cache.free == 8 - 5 and SCRATCH not in cache.owned(0) + cache.owned(1)
    assert cache.tables[0, :4].tolist() == cache.owned(0) and cache.tables[0, 4:].eq(0).all()
    cache.grow([1])
    assert len(cache.owned(1)) == 2 and cache.tables[1, 1] == cache.owned(1)[1]
    cache.move(1, 2)  # a leave compacts by moving the table, not the keys and values
    assert cache.owned(1) == [] and cache.tables[1].eq(SCRATCH).all()
    assert len(cache.owned(2)) == 2
    cache.release(0)
    cache.release(2)
    assert cache.free == 8 and cache.blocks_held() == 0


def test_tokens_go_to_their_blocks_and_attention_reads_each_rows_own() -> None:
    cache = pool()
    cache.assign(0, [], 2 * BLOCK)
    cache.assign(1, [], BLOCK)
    width = 2 * BLOCK
    # Row 0 writes positions 0..31, row 1 positions 0..15 (its second block is scratch).
    columns = torch.arange(width).repeat(2, 1)
    keys = torch.arange(2 * width, dtype=torch.float32).view(2, 1, width, 1).expand(2, 1, width, 2)
    cache.plan(slice(0, 2), columns, width)
    read, _ = cache.update(keys, keys.clone(), 0)
    assert torch.equal(read[0], keys[0])
    assert torch.equal(read[1, :, :BLOCK], keys[1, :, :BLOCK])
    # One more token for row 1 at position 16, in a block it grows.
    cache.grow([1])
    cache.plan(slice(1, 2), torch.tensor([[BLOCK]]), width)
    token = torch.full((1, 1, 1, 2), -1.0)
    read, _ = cache.update(token, token, 0)
    assert torch.equal(read[0, :, :BLOCK], keys[1, :, :BLOCK]) and read[0, 0, BLOCK, 0] == -1


def test_cached_prefix_blocks_are_shared_and_given_back_when_the_pool_needs_them() -> None:
    cache = pool(blocks=7)
    prefixes = PrefixCache(cache, max_tokens=10 * BLOCK)
    ids = list(range(3 * BLOCK + 5))
    cache.assign(0, [], len(ids))
    prefixes.insert(ids, cache.owned(0))
    whole = cache.owned(0)[:3]
    cache.release(0)
    assert cache.free == 6 - 3  # the three whole blocks stay for the next request
    shared = prefixes.match([*ids[: 2 * BLOCK + 1], 999])
    assert shared == whole[:2]
    cache.hold(shared)
    cache.assign(1, shared, 2 * BLOCK + 2)
    assert cache.owned(1)[:2] == shared and len(cache.owned(1)) == 3
    prefixes.make_room(6)  # evicts every cached block, but row 1 still holds two
    assert cache.free == 6 - 3
    cache.release(1)
    assert cache.free == 6 and prefixes.match(ids) == []


async def test_memory_follows_each_rows_length(make_backend, reference) -> None:
    backend = await make_backend(max_batch_size=4, prefix_cache_tokens=0, batch_wait_ms=500)
    runner = backend._worker._runner
    seen: list[tuple[int, int]] = []

    def at_decode(kwargs: dict[str, Any]) -> None:
        if kwargs["input_ids"].shape == (4, 1):
            lengths = [n for n in runner._lengths if n]
            seen.append((runner.cache.blocks_held(), sum(blocks_for(n + 1) for n in lengths)))

    before_forward(backend._worker._runner.loaded.model, at_decode)
    prompts = [chat("tell me a long story about the sea " * 12)] + [chat(w) for w in "abc"]
    params = GenerationParams(max_new_tokens=12, do_sample=False)
    results = await asyncio.gather(
        *(backend.generate(GenerationRequest(p, params)) for p in prompts)
    )
    assert [r.text for r in results] == [reference(p, 12) for p in prompts]
    assert seen and all(held == needed for held, needed in seen), seen
    # Padded to the longest row, the four rows would take four times the long one's blocks.
    assert seen[0][0] < 2 * blocks_for(results[0].prompt_tokens)
    assert runner.cache.free == runner.cache.blocks - 1  # all given back


async def test_a_full_cache_preempts_the_newest_row_which_resumes_unchanged(
    make_backend, reference
) -> None:
    backend = await make_backend(
        max_batch_size=4,
        context_window=256,
        kv_cache_tokens=256,
        prefix_cache_tokens=0,
        batch_wait_ms=500,
    )
    prompts = [chat(f"question {i} " * 3) for i in range(4)]
    params = GenerationParams(max_new_tokens=100, do_sample=False)
    results = await asyncio.gather(
        *(backend.generate(GenerationRequest(p, params)) for p in prompts)
    )
    assert [r.text for r in results] == [reference(p, 100) for p in prompts]
    stats = backend.stats()
    assert stats.preempted >= 1 and stats.kv_cache_used == 0  # all given back


async def test_requests_arriving_together_compute_a_shared_prompt_once(
    make_backend, reference
) -> None:
    backend = await make_backend(max_batch_size=4, batch_wait_ms=500)
    system = "<|im_start|>system\n" + "You are a helpful assistant. " * 16 + "<|im_end|>\n"
    prompts = [system + chat(q) for q in ("a joke", "a song", "a book")]
    results = await asyncio.gather(*(backend.generate(GenerationRequest(p)) for p in prompts))
    assert [r.text for r in results] == [reference(p, 12) for p in prompts]
    numbers = backend.metrics.snapshot()
    shared = BLOCK * (len(backend.tokenizer(system).input_ids) // BLOCK)
    assert numbers.prefill_tokens == sum(r.prompt_tokens for r in results) - 2 * shared
    assert numbers.cached_prompt_tokens == 2 * shared
    runner = backend._worker._runner
    pool = runner.cache.blocks - 1
    assert backend.stats().kv_cache_used == pytest.approx(len(runner._prefixes) / pool)


async def test_a_request_cancelled_while_its_group_is_prefilled_gives_its_blocks_back(
    models, make_backend, reference
) -> None:
    backend = await make_backend(
        max_batch_size=2, prefill_chunk=16, prefix_cache_tokens=0, batch_wait_ms=500
    )
    runner = backend._worker._runner
    gate, passes = threading.Event(), []

    def hold_the_second_chunk(kwargs: dict[str, Any]) -> None:
        passes.append(kwargs["input_ids"].shape)
        if len(passes) == 2:
            gate.wait(30)

    before_forward(models[-1], hold_the_second_chunk)
    kept_prompt = chat("tell me a long story about the sea " * 6)
    kept = asyncio.create_task(backend.generate(GenerationRequest(kept_prompt)))
    dropped = asyncio.create_task(
        backend.generate(GenerationRequest(chat("and one about the mountains " * 6)))
    )
    await wait_until(lambda: len(passes) == 2)
    assert len(runner._group.jobs()) == 2  # the two prompts are prefilled together
    dropped.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await dropped
    gate.set()
    assert (await kept).text == reference(kept_prompt, 12)
    assert runner.cache.blocks_held() == 0


async def test_compiled_decode_steps_leave_the_blocks_of_joining_rows_alone(
    make_backend, reference, monkeypatch
) -> None:
    # Compiled, a decode step runs a power-of-two batch: 3 decoding rows run as 4, the
    # fourth slot being a prompt in the middle of its prefill.
    real_compile = torch.compile
    monkeypatch.setattr(
        torch,
        "compile",
        lambda fn, **kw: real_compile(fn, backend=lambda g, _: g.forward, dynamic=False),
    )
    backend = await make_backend(
        compile=True, max_batch_size=4, prefill_chunk=16, batch_wait_ms=200
    )
    params = GenerationParams(max_new_tokens=30, do_sample=False)
    running = [chat(w) for w in ("one", "two", "three")]
    joining = chat("tell me a long story about the sea " * 6)
    try:
        first = [
            asyncio.create_task(backend.generate(GenerationRequest(p, params))) for p in running
        ]
        await wait_until(lambda: backend.stats().generated_tokens >= 6)
        late = await backend.generate(GenerationRequest(joining))
        done = await asyncio.gather(*first)
    finally:
        torch._dynamo.reset()
    assert late.text == reference(joining, 12)
    assert [r.text for r in done] == [reference(p, 30) for p in running]


def test_the_pool_is_sized_by_the_config_else_by_the_context_else_by_the_free_gpu_memory() -> None:
    settings = ExecutorSettings(max_batch_size=16, prefix_cache_tokens=8192)
    token = 128 * 1024  # Mistral-7B in fp16
    wanted = 16 * 4096 + 8192
    assert pool_tokens(settings, 4096, token, None) == wanted  # CPU: every row at full context
    assert pool_tokens(settings, 4096, token, 80 * 2**30) == wanted  # a roomy GPU
    # A 24 GB card with 14.5 GB of weights and 10% kept back: 7 GiB, about 57k tokens.
    assert pool_tokens(settings, 4096, token, 7 * 2**30) == 7 * 2**30 // token
    configured = ExecutorSettings(kv_cache_tokens=5000)
    assert pool_tokens(configured, 4096, token, 2**30) == 5000  # the operator's word stands


def test_a_gpu_without_room_for_one_request_is_a_clear_load_error() -> None:
    with pytest.raises(
        ModelLoadError, match=r"room for 2048 tokens .* lower model\.context_window"
    ):
        pool_tokens(ExecutorSettings(), 4096, 128 * 1024, 256 * 2**20)
