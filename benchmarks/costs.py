"""The executor's host-side costs, measured by instrumenting a running TransformersBackend.

Used by ``benchmarks/executor.py``. Every figure comes from the executor doing
real work: 16 streamed requests decoding together, timed in the worker thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import torch
from transformers import DynamicCache

from hermes_bot.backend import GenerationParams, GenerationRequest
from hermes_bot.inference.detokenize import IncrementalDetokenizer, decode, piece_table
from hermes_bot.inference.kv_cache import BLOCK, PagedCache
from hermes_bot.inference.runner import ModelRunner
from hermes_bot.inference.sampling import Sampler
from hermes_bot.inference.transformers_backend import TransformersBackend
from hermes_bot.prompts import Message, render, system_prompt

# Methods that read a tensor's value back to the host (a device synchronisation on a GPU).
# ``numpy()`` is not one: it only takes tensors already on the host (a view, no copy).
_READS = ("tolist", "item", "__bool__", "__int__", "__float__", "__index__")


class Probe:
    """Times each worker step, the forward passes and token selection inside it, and counts
    reads from the device, in the worker thread only."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None
        self._thread = 0
        self._undo: list[Callable[[], None]] = []

    def __enter__(self) -> Probe:
        probe = self

        def timed(owner: Any, name: str, key: str) -> None:
            original = getattr(owner, name)

            def wrapper(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    if probe._current is not None:
                        probe._current[key] += time.perf_counter() - start
                        if key == "forward":
                            probe._current["widths"].append(args[1].shape[1])

            setattr(owner, name, wrapper)
            self._undo.append(lambda: setattr(owner, name, original))

        original_step = ModelRunner.step

        def step(runner: ModelRunner, new: list[Any]) -> None:
            probe._thread = threading.get_ident()
            rows = sum(job is not None for job in runner._rows)
            before = [t.data_ptr() for t in (*runner.cache.keys, *runner.cache.values)]
            probe._current = {"forward": 0.0, "select": 0.0, "reads": 0, "widths": []}
            start = time.perf_counter()
            original_step(runner, new)
            probe._current["total"] = time.perf_counter() - start
            after = [t.data_ptr() for t in (*runner.cache.keys, *runner.cache.values)]
            tensors = (*runner.cache.keys, *runner.cache.values)
            probe._current["copied"] = sum(
                t.nbytes for t, a, b in zip(tensors, before, after, strict=True) if a != b
            )
            probe._current["rows"] = rows
            cache, token = runner.cache, PagedCache.token_bytes(runner.loaded.model)
            probe._current["held"] = sum(runner._lengths) * token
            probe._current["blocks"] = cache.blocks_held() * BLOCK * token
            probe._current["pool"] = cache.blocks * BLOCK * token
            probe.steps.append(probe._current)
            probe._current = None

        ModelRunner.step = step  # type: ignore[method-assign]
        self._undo.append(lambda: setattr(ModelRunner, "step", original_step))
        timed(ModelRunner, "_forward", "forward")  # the mask and the model's forward pass
        timed(Sampler, "select", "select")
        for name in _READS:
            original = getattr(torch.Tensor, name)

            def counted(tensor: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
                if probe._current is not None and threading.get_ident() == probe._thread:
                    probe._current["reads"] += 1
                return _original(tensor, *args, **kwargs)

            setattr(torch.Tensor, name, counted)
            self._undo.append(
                lambda name=name, original=original: setattr(torch.Tensor, name, original)
            )
        return self

    def __exit__(self, *exc: object) -> None:
        for undo in reversed(self._undo):
            undo()

    def decode_steps(self, rows: int) -> list[dict[str, Any]]:
        """Steps that only decoded, with ``rows`` rows."""
        return [s for s in self.steps if s["rows"] == rows and s["widths"] == [1]]


async def host_costs(backend: TransformersBackend) -> dict[str, float]:
    """16 streamed requests decoding together: host time, reads and KV copies per step."""
    rows = 16
    prompts = [
        f"<|im_start|>user\nquestion number {i}<|im_end|>\n<|im_start|>assistant\n"
        for i in range(rows)
    ]
    params = GenerationParams(max_new_tokens=96, do_sample=False)

    async def consume(prompt: str) -> None:
        async for _ in backend.stream(GenerationRequest(prompt, params)):
            pass

    with Probe() as probe:
        await asyncio.gather(*(consume(p) for p in prompts))
    steps = probe.decode_steps(rows)
    host = sum(s["total"] - s["forward"] - s["select"] for s in steps)
    forward = sum(s["forward"] for s in steps)
    print(
        f"decode steps at {rows} rows: {len(steps)}; per step: forward "
        f"{1e3 * forward / len(steps):.2f} ms, selection "
        f"{1e3 * sum(s['select'] for s in steps) / len(steps):.2f} ms, host "
        f"{1e3 * host / len(steps):.2f} ms"
    )
    busiest = max(steps, key=lambda s: s["held"])
    held, blocks = busiest["held"], busiest["blocks"]
    print(
        f"KV cache: a pool of {busiest['pool'] / 2**20:.1f} MiB; at the busiest step the rows' "
        f"blocks took {blocks / 2**20:.2f} MiB for {held / 2**20:.2f} MiB of tokens"
    )
    return {
        "host_us_per_row": 1e6 * host / (len(steps) * rows),
        "host_reads_per_step": sum(s["reads"] for s in steps) / len(steps),
        "kv_bytes_copied_per_step": sum(s["copied"] for s in steps) / len(steps),
        "kv_bytes_held_per_token_held": blocks / held,
    }


def dynamic_cache_copies(model: Any) -> float:
    """Bytes transformers' DynamicCache reallocates per decode step at 16 rows (for comparison)."""
    ids = torch.randint(100, 30000, (16, 100))
    with torch.inference_mode():
        out = model(input_ids=ids, cache=DynamicCache(), use_cache=True, logits_to_keep=1)
        cache, copied, steps = out.cache, 0, 8
        for _ in range(steps):
            layers = [t for layer in cache.layers for t in (layer.keys, layer.values)]
            before = [t.data_ptr() for t in layers]
            out = model(input_ids=ids[:, :1], cache=cache, use_cache=True, logits_to_keep=1)
            after = [t for layer in out.cache.layers for t in (layer.keys, layer.values)]
            copied += sum(t.nbytes for t, b in zip(after, before, strict=True) if t.data_ptr() != b)
    return copied / steps


def detokenization(tokenizer: Any) -> dict[str, float]:
    """Cost per token of streaming answers of 32 and 1,024 tokens, now and re-decoding whole."""
    start = time.perf_counter()
    proven = piece_table(tokenizer) is not None  # once per tokenizer, at loading in the executor
    print(
        f"detokenization: piece table {'built and proven' if proven else 'refused, windows used'} "
        f"in {1e3 * (time.perf_counter() - start):.0f} ms (once per tokenizer)"
    )
    text = system_prompt("functioncall") * 4
    ids = tokenizer(text, add_special_tokens=False).input_ids[:1024]
    assert len(ids) == 1024, len(ids)
    per_token = {}
    for length in (32, 1024):
        for name, run in (("incremental", _incremental), ("whole", _whole)):
            repeats = max(1, 2048 // length)
            start = time.perf_counter()
            for _ in range(repeats):
                run(tokenizer, ids[:length])
            per_token[name, length] = (time.perf_counter() - start) / (repeats * length)
    for name in ("incremental", "whole"):
        print(
            f"detokenization ({name}): {1e6 * per_token[name, 32]:.1f} us/token at 32 tokens, "
            f"{1e6 * per_token[name, 1024]:.1f} us/token at 1,024"
        )
    return {"detok_1024_vs_32": per_token["incremental", 1024] / per_token["incremental", 32]}


def _incremental(tokenizer: Any, ids: list[int]) -> None:
    detokenizer = IncrementalDetokenizer(tokenizer)
    for token in ids:
        detokenizer.push(token)
    detokenizer.flush()


def _whole(tokenizer: Any, ids: list[int]) -> None:
    for end in range(1, len(ids) + 1):
        decode(tokenizer, ids[:end])


async def prefix_reuse(backend: TransformersBackend) -> dict[str, float]:
    """Prompt tokens computed per request, 16 requests with one system prompt vs 16 without."""
    system = system_prompt("functioncall")
    params = GenerationParams(max_new_tokens=4, do_sample=False)

    def prompt(head: str, i: int) -> str:
        return render([Message("system", head), Message("user", f"question {i}")])

    async def computed(prompts: list[str]) -> float:
        before = backend.metrics.snapshot().prefill_tokens
        await asyncio.gather(*(backend.generate(GenerationRequest(p, params)) for p in prompts))
        return (backend.metrics.snapshot().prefill_tokens - before) / len(prompts)

    # Distinct system prompts of the same length: nothing to share.
    alone = await computed([prompt(f"{i:04d} {system}", i) for i in range(16)])
    await computed([prompt(system, 99)])  # the bot's first message ever caches the prompt
    shared = await computed([prompt(system, i) for i in range(16)])
    tokens = backend.count_tokens(system)
    print(
        f"system prompt of {tokens} tokens: {alone:.0f} prompt tokens computed per request "
        f"without a shared prefix, {shared:.0f} with it"
    )
    return {"prefix_tokens_prefilled_ratio": shared / alone}


async def measure(backend: TransformersBackend, reference: Any, tokenizer: Any) -> dict[str, float]:
    """Every cost figure, printed with its context; returns the name=value figures."""
    figures = await host_costs(backend)
    copied = dynamic_cache_copies(reference)
    print(f"DynamicCache (the executor before): {copied / 2**20:.2f} MiB copied per decode step")
    figures.update(detokenization(tokenizer))
    figures.update(await prefix_reuse(backend))
    return figures
