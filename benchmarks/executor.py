"""Executor benchmark: throughput against the seed's loop, one static batch and transformers'
own continuous batching, plus the executor's host-side costs, side by side in one run.

    python benchmarks/executor.py [--quick] [--size tiny|60m] [--repeat N]

Throughput: N concurrent requests (prompts of 20-120 tokens, outputs of 16-64
tokens, greedy, EOS ignored, new prompts every round) all arrive at t=0.
naive: one ``model.generate`` per request in arrival order (what the seed did);
static: one left-padded ``model.generate`` over all N, run to the longest
output; executor: all N streamed through TransformersBackend; builtin:
transformers' continuous batching (``init_continuous_batching``, paged
attention). Tokens/s counts each request's own output tokens. Each of
``--repeat`` rounds runs the strategies back to back; the table shows each
one's best round, the ratios are medians of the rounds' ratios (the machine is
shared and noisy: compare ratios, not absolute numbers).

Costs (module ``benchmarks.costs``): host time per row per decode step outside
the model forward and the sampling math, reads from the device per step, KV
bytes copied per step, detokenization per token at answer lengths 32 and 1,024,
prompt tokens computed with and without a shared system prompt, KV bytes held
per token held. The output ends with one ``name=value`` line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from benchmarks import costs
from hermes_bot.backend import GenerationParams, GenerationRequest
from hermes_bot.config import ExecutorSettings, ModelSettings
from hermes_bot.inference.metrics import percentile
from hermes_bot.inference.transformers_backend import TransformersBackend
from tests.tiny_model import build_tiny_model

SIZES = [1, 16, 32]


@dataclass
class Work:
    """One request of the workload."""

    prompt: str
    ids: list[int]
    new_tokens: int


@dataclass
class Row:
    """Measurements of one strategy at one N."""

    name: str
    n: int
    tokens: int
    seconds: float
    latencies: list[float]
    ttfts: list[float]

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds

    def line(self) -> str:
        return (
            f"{self.name:<10} N={self.n:<3} {self.rate:9.1f} tok/s   "
            f"p50 {1000 * percentile(self.latencies, 0.5):8.1f} ms   "
            f"p95 {1000 * percentile(self.latencies, 0.95):8.1f} ms   "
            f"ttft {1000 * sum(self.ttfts) / len(self.ttfts):8.1f} ms"
        )


class FirstToken:
    """A generate() streamer that notes when the first new token comes out."""

    def __init__(self) -> None:
        self.calls, self.at = 0, 0.0

    def put(self, value: Any) -> None:
        self.calls += 1
        if self.calls == 2:
            self.at = time.perf_counter()

    def end(self) -> None:
        pass


def workload(tokenizer: Any, n: int, seed: int) -> list[Work]:
    rng = random.Random(seed)
    work = []
    for _ in range(n):
        words = tokenizer.decode([rng.randrange(1000, 28000) for _ in range(rng.randint(8, 108))])
        prompt = f"<|im_start|>user\n{words}<|im_end|>\n<|im_start|>assistant\n"
        work.append(Work(prompt, tokenizer(prompt).input_ids, rng.randint(16, 64)))
    return work


def greedy(model: Any, ids: torch.Tensor, mask: torch.Tensor, new: int, streamer: Any) -> Any:
    return model.generate(
        ids,
        attention_mask=mask,
        max_new_tokens=new,
        min_new_tokens=new,
        do_sample=False,
        pad_token_id=32000,
        streamer=streamer,
    )


def run_naive(model: Any, work: list[Work]) -> Row:
    start = time.perf_counter()
    latencies, ttfts = [], []
    for item in work:
        ids = torch.tensor([item.ids])
        first = FirstToken()
        greedy(model, ids, torch.ones_like(ids), item.new_tokens, first)
        latencies.append(time.perf_counter() - start)
        ttfts.append(first.at - start)
    tokens = sum(item.new_tokens for item in work)
    return Row("naive", len(work), tokens, time.perf_counter() - start, latencies, ttfts)


def run_static(model: Any, work: list[Work]) -> Row:
    width = max(len(item.ids) for item in work)
    ids = torch.full((len(work), width), 32000)
    mask = torch.zeros_like(ids)
    for row, item in enumerate(work):
        ids[row, width - len(item.ids) :] = torch.tensor(item.ids)
        mask[row, width - len(item.ids) :] = 1
    first = FirstToken()
    start = time.perf_counter()
    greedy(model, ids, mask, max(item.new_tokens for item in work), first)
    seconds = time.perf_counter() - start
    tokens = sum(item.new_tokens for item in work)
    n = len(work)
    return Row("static", n, tokens, seconds, [seconds] * n, [first.at - start] * n)


async def run_executor(backend: TransformersBackend, work: list[Work]) -> Row:
    start = time.perf_counter()

    async def one(item: Work) -> tuple[float, float]:
        request = GenerationRequest(
            item.prompt, GenerationParams(max_new_tokens=item.new_tokens, do_sample=False)
        )
        first = 0.0
        async for _ in backend.stream(request):
            first = first or time.perf_counter() - start
        return time.perf_counter() - start, first

    done = await asyncio.gather(*(one(item) for item in work))
    seconds = time.perf_counter() - start
    tokens = sum(item.new_tokens for item in work)
    return Row("executor", len(work), tokens, seconds, [d[0] for d in done], [d[1] for d in done])


def start_builtin(model: Any) -> Any:
    """transformers' continuous batching manager (paged attention), cache sized for the runs."""
    from transformers import ContinuousBatchingConfig, GenerationConfig

    config = GenerationConfig(do_sample=False, max_new_tokens=64, eos_token_id=-1, pad_token_id=0)
    # Without explicit sizes it sizes its paged cache from free memory, which takes minutes here.
    paging = ContinuousBatchingConfig(num_blocks=128, max_batch_tokens=1024, use_cuda_graph=False)
    manager = model.init_continuous_batching(
        generation_config=config, continuous_batching_config=paging
    )
    manager.start()
    return manager


def run_builtin(manager: Any, work: list[Work]) -> Row:
    """All requests handed to the built-in manager at once, streamed, per-request lengths."""
    start = time.perf_counter()
    for item in work:
        manager.add_request(item.ids, max_new_tokens=item.new_tokens, streaming=True)
    latencies, ttfts, left = [], {}, len(work)
    while left:
        result = manager.get_result(timeout=5)
        if result is None:
            continue
        ttfts.setdefault(result.request_id, time.perf_counter() - start)
        if result.is_finished():
            latencies.append(time.perf_counter() - start)
            left -= 1
    seconds = time.perf_counter() - start
    tokens = sum(item.new_tokens for item in work)
    return Row("builtin", len(work), tokens, seconds, latencies, list(ttfts.values()))


Runs = dict[tuple[str, int], list[Row]]


async def throughput(
    model: Any, tokenizer: Any, backend: TransformersBackend, repeats: int
) -> Runs:
    """Every strategy at every N, ``repeats`` rounds; each round runs them back to back."""
    manager = start_builtin(model)
    warm = workload(tokenizer, 2, seed=99)
    run_naive(model, warm)
    await run_executor(backend, warm)
    run_builtin(manager, warm)
    runs: Runs = {}
    for n in SIZES:
        for round_ in range(repeats):
            # New prompts each round: the executor's prefix cache must not serve a round from
            # the one before (transformers' built-in batching has no such cache).
            work = workload(tokenizer, n, seed=1000 * round_ + n)
            for row in (
                run_naive(model, work),
                run_static(model, work),
                await run_executor(backend, work),
                run_builtin(manager, work),
            ):
                runs.setdefault((row.name, n), []).append(row)
        for (_, size), rows in runs.items():
            if size == n:
                print(max(rows, key=lambda row: row.rate).line(), flush=True)
    manager.stop(block=True)
    return runs


def ratio(runs: Runs, n: int, first: str, second: str) -> float:
    """Median over rounds of ``first``'s throughput over ``second``'s in the same round: the
    machine is shared, and load that comes and goes hits both sides of a round alike."""
    return statistics.median(
        a.rate / b.rate for a, b in zip(runs[first, n], runs[second, n], strict=True)
    )


async def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        directory = build_tiny_model(Path(tmp), size=args.size)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
        backend = TransformersBackend(
            ModelSettings(id=str(directory), device="cpu", context_window=2048),
            ExecutorSettings(max_batch_size=max(SIZES), queue_size=256, batch_wait_ms=2),
            GenerationParams(do_sample=False),
        )
        await backend.start()
        print(f"model: tiny Mistral '{args.size}', fp32, CPU, 1 torch thread")
        runs = await throughput(model, tokenizer, backend, 1 if args.quick else args.repeat)
        figures = await costs.measure(backend, model, tokenizer)
        await backend.close()
    for n in SIZES[1:]:
        print(
            f"N={n} (median of rounds): executor/naive {ratio(runs, n, 'executor', 'naive'):.2f}x, "
            f"executor/static {ratio(runs, n, 'executor', 'static'):.2f}x, "
            f"executor/builtin {ratio(runs, n, 'executor', 'builtin'):.2f}x"
        )
    lone = statistics.median(
        percentile(a.latencies, 0.5) / percentile(b.latencies, 0.5)
        for a, b in zip(runs["executor", 1], runs["naive", 1], strict=True)
    )
    print(f"lone request latency executor/generate: {lone:.2f}x")
    figures["vs_builtin_16"] = ratio(runs, 16, "executor", "builtin")
    figures["vs_builtin_32"] = ratio(runs, 32, "executor", "builtin")
    figures["executor_vs_naive"] = ratio(runs, 16, "executor", "naive")
    for name, value in figures.items():
        print(f"{name}={value:.4g}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, not --repeat")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (ratios: their median)")
    parser.add_argument("--size", choices=["tiny", "60m"], default="tiny")
    asyncio.run(main(parser.parse_args()))
