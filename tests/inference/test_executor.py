"""The executor under pressure: queue limit, faults, out-of-memory, cancellation, shutdown."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from hermes_bot.backend import GenerationParams, GenerationRequest
from hermes_bot.errors import Busy, GenerationError, ModelLoadError, PromptTooLong
from hermes_bot.inference import worker
from hermes_bot.inference.kv_cache import PagedCache
from hermes_bot.inference.runner import ModelRunner
from tests.inference.conftest import chat

PROMPTS = [chat("hello " * n) for n in (1, 9, 3, 17)]


def before_forward(model: Any, hook: Any) -> None:
    """Call ``hook(kwargs)`` before every forward pass of ``model`` (it may raise)."""
    original = model.forward

    def forward(**kwargs: Any) -> Any:
        hook(kwargs)
        return original(**kwargs)

    model.forward = forward


async def wait_until(condition: Any, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.01)


async def test_full_queue_rejects_surplus_at_once(models, make_backend) -> None:
    backend = await make_backend(queue_size=64, max_batch_size=16)
    gate = threading.Event()  # holds the first batch until every request has been submitted
    before_forward(models[-1], lambda kwargs: gate.wait(60))
    order: list[str] = []

    async def one(i: int) -> str:
        try:
            await backend.generate(
                GenerationRequest(chat(f"n{i}"), GenerationParams(max_new_tokens=2))
            )
        except Busy as error:
            assert error.queue_position is not None and error.queue_position >= 64
            assert "busy" in error.user_message
            order.append("busy")
            return "busy"
        order.append("ok")
        return "ok"

    tasks = [asyncio.create_task(one(i)) for i in range(1000)]
    await wait_until(lambda: len(order) >= 1000 - 64 - 16)
    gate.set()
    outcomes = await asyncio.gather(*tasks)
    busy, ok = outcomes.count("busy"), outcomes.count("ok")
    assert busy + ok == 1000
    assert 64 <= ok <= 64 + 16  # the queue plus at most one running batch
    assert order[:busy] == ["busy"] * busy  # turned away before anything finished
    assert backend.stats().rejected == busy
    assert backend.stats().completed == ok


async def test_fault_fails_only_that_batch(models, make_backend, reference) -> None:
    backend = await make_backend(max_batch_size=3, batch_wait_ms=500)
    state = {"armed": True}

    def fail_once_with_three_rows(kwargs: dict[str, Any]) -> None:
        if state["armed"] and kwargs["input_ids"].shape == (3, 1):
            state["armed"] = False
            raise RuntimeError("injected fault")

    before_forward(models[-1], fail_once_with_three_rows)
    first = await asyncio.gather(
        *(backend.generate(GenerationRequest(p)) for p in PROMPTS[:3]), return_exceptions=True
    )
    assert all(isinstance(r, GenerationError) and "injected fault" in str(r) for r in first)
    again = await asyncio.gather(*(backend.generate(GenerationRequest(p)) for p in PROMPTS[:3]))
    assert [r.text for r in again] == [reference(p, 12) for p in PROMPTS[:3]]
    assert backend.stats().failed == 3


@pytest.mark.parametrize("after_steps", [0, 4])
async def test_out_of_memory_retries_in_smaller_batches(
    models, make_backend, reference, after_steps: int
) -> None:
    backend = await make_backend(max_batch_size=4, batch_wait_ms=500)
    calls = {"n": 0, "oom": 0}

    def oom_above_one_row(kwargs: dict[str, Any]) -> None:
        calls["n"] += 1
        if calls["n"] > after_steps and kwargs["input_ids"].shape[0] > 1:
            calls["oom"] += 1
            raise torch.cuda.OutOfMemoryError("simulated")

    before_forward(models[-1], oom_above_one_row)
    results = await asyncio.gather(*(backend.generate(GenerationRequest(p)) for p in PROMPTS))
    assert calls["oom"] >= 2  # 4 rows, then 2 rows, then one at a time
    assert [r.text for r in results] == [reference(p, 12) for p in PROMPTS]


async def test_out_of_memory_alone_fails_clearly(models, make_backend) -> None:
    backend = await make_backend()

    def always_oom(kwargs: dict[str, Any]) -> None:
        raise torch.cuda.OutOfMemoryError("simulated")

    before_forward(models[-1], always_oom)
    with pytest.raises(GenerationError, match="out of GPU memory"):
        await backend.generate(GenerationRequest(PROMPTS[0]))


async def test_cancelling_half_the_requests_lets_the_rest_finish(make_backend) -> None:
    backend = await make_backend(max_batch_size=8, batch_wait_ms=200)
    params = GenerationParams(max_new_tokens=200, do_sample=False)
    tasks = [
        asyncio.create_task(backend.generate(GenerationRequest(chat(f"q{i}"), params)))
        for i in range(8)
    ]
    await wait_until(lambda: backend.stats().running == 8)
    for task in tasks[::2]:
        task.cancel()
    await wait_until(lambda: backend.stats().running <= 4)
    results = await asyncio.gather(*tasks[1::2])
    assert all(r.completion_tokens == 200 for r in results)
    assert all(t.cancelled() for t in tasks[::2])
    assert backend.stats().completed == 4


async def test_leaving_a_stream_early_frees_its_slot(make_backend) -> None:
    backend = await make_backend(defaults=GenerationParams(max_new_tokens=200, do_sample=False))
    async for _ in backend.stream(GenerationRequest(PROMPTS[1])):
        break
    await wait_until(lambda: backend.stats().running == 0)
    result = await backend.generate(
        GenerationRequest(PROMPTS[0], GenerationParams(max_new_tokens=3))
    )
    assert result.completion_tokens == 3


async def test_shutdown_answers_every_request_in_flight(make_backend) -> None:
    backend = await make_backend(max_batch_size=2, defaults=GenerationParams(max_new_tokens=300))
    tasks = [
        asyncio.create_task(backend.generate(GenerationRequest(chat(f"s{i}")))) for i in range(6)
    ]
    await wait_until(lambda: backend.stats().generated_tokens > 0)
    await backend.close()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, GenerationError)
            assert "cancelled: shutting down" in str(outcome)
    assert any(isinstance(o, GenerationError) for o in outcomes)
    with pytest.raises(GenerationError):
        await backend.generate(GenerationRequest(chat("late")))


async def test_prompt_too_long_is_refused_before_generation(models, make_backend) -> None:
    backend = await make_backend(context_window=256)
    calls: list[int] = []
    before_forward(models[-1], lambda kwargs: calls.append(1))
    with pytest.raises(PromptTooLong):
        await backend.generate(
            GenerationRequest(chat("word " * 300), GenerationParams(max_new_tokens=8))
        )
    with pytest.raises(PromptTooLong):  # fits alone, not with room for the answer
        await backend.generate(
            GenerationRequest(chat("word " * 200), GenerationParams(max_new_tokens=100))
        )
    with pytest.raises(PromptTooLong):
        async for _ in backend.stream(GenerationRequest(chat("word " * 300))):
            pass
    assert calls == []


async def test_timeout_fails_the_request_and_frees_the_slot(models, make_backend) -> None:
    backend = await make_backend(defaults=GenerationParams(max_new_tokens=500))
    before_forward(models[-1], lambda kwargs: time.sleep(0.02))
    with pytest.raises(GenerationError, match="timed out"):
        await backend.generate(GenerationRequest(PROMPTS[0], timeout=0.2))
    await wait_until(lambda: backend.stats().running == 0)
    result = await backend.generate(
        GenerationRequest(PROMPTS[0], GenerationParams(max_new_tokens=2), timeout=30)
    )
    assert result.completion_tokens == 2


async def test_metrics_reach_stats_and_the_log(make_backend, caplog, monkeypatch) -> None:
    caplog.set_level("INFO", logger="hermes_bot.inference.worker")
    # The worker's clock starts near 0, as on a machine booted a moment ago.
    boot = time.monotonic()
    clock = SimpleNamespace(monotonic=lambda: time.monotonic() - boot)
    monkeypatch.setattr(worker, "time", clock)
    backend = await make_backend()
    params = GenerationParams(max_new_tokens=5, do_sample=False)
    await asyncio.gather(*(backend.generate(GenerationRequest(p, params)) for p in PROMPTS))
    stats = backend.stats()
    assert stats.completed == len(PROMPTS) and stats.generated_tokens > 0
    assert stats.latency_p95_ms >= stats.latency_p50_ms > 0
    await wait_until(lambda: "tokens/s" in caplog.text)
    assert re.search(r"[1-4] completed, 0 failed, 0 turned away", caplog.text)


async def test_a_kv_cache_too_big_for_the_device_is_a_clear_load_error(
    make_backend, monkeypatch
) -> None:
    def out_of_memory(*args: Any, **kwargs: Any) -> Any:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    monkeypatch.setattr(PagedCache, "for_model", out_of_memory)
    with pytest.raises(ModelLoadError, match=r"lower executor\.kv_cache_tokens"):
        await make_backend(max_batch_size=64)


async def test_a_bug_in_a_step_fails_its_requests_and_serving_goes_on(
    make_backend, monkeypatch
) -> None:
    backend = await make_backend(max_batch_size=4, batch_wait_ms=200)
    real_decode, calls = ModelRunner._decode, {"n": 0}

    def decode_with_a_bug(runner: ModelRunner) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise IndexError("a bug")
        real_decode(runner)

    monkeypatch.setattr(ModelRunner, "_decode", decode_with_a_bug)
    outcomes = await asyncio.gather(
        *(backend.generate(GenerationRequest(p)) for p in PROMPTS[:3]), return_exceptions=True
    )
    assert all(isinstance(o, GenerationError) and "IndexError: a bug" in str(o) for o in outcomes)
    result = await backend.generate(GenerationRequest(PROMPTS[0]))
    assert result.completion_tokens == 12
