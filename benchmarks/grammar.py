"""Constrained decoding benchmark: how often calls validate, and what the grammar costs.

    python benchmarks/grammar.py [--quick]

Runs the real executor (TransformersBackend with ``grammar_factory``) on a tiny
random-weight OpenHermes stand-in, sampling at temperature 1.0:

1. validity: forced generations of every tool (both dialects, the system prompt
   listing the tools) versus as many unconstrained ones; the share whose text
   parses to exactly one call of the requested tool that pydantic accepts;
2. throughput: one 16-row batch all forced versus the same batch unconstrained;
3. mask cost per constrained token: time on the decode path (``fill_masks`` +
   ``consume``) and the full mask computation when replayed synchronously.

Ends with ``forced_valid=P`` (percent) and ``grammar_vs_free=R`` (throughput ratio).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llguidance.hf
import torch

from hermes_bot.backend import (
    Constraint,
    Dialect,
    GenerationParams,
    GenerationRequest,
    GenerationResult,
)
from hermes_bot.config import ExecutorSettings, ModelSettings
from hermes_bot.errors import ToolValidationError
from hermes_bot.inference.grammar import GrammarCompiler, RowMatcher
from hermes_bot.inference.transformers_backend import TransformersBackend
from hermes_bot.parsing import parse_completion
from hermes_bot.prompts import Message, format_calls, render, system_prompt
from hermes_bot.tools import TOOLS, ToolCall, validate_call
from tests.tiny_model import build_tiny_model

DIALECTS: tuple[Dialect, Dialect] = ("functioncall", "tool_call")
ASKS = {
    "Joke": "Tell me a joke about cats.",
    "SongRecommendation": "I like jazz, recommend me a song.",
    "BookRecommendation": "I like science fiction, recommend me a book.",
}
BATCH = 16
DEFAULT_MAX_NEW_TOKENS = 512  # the configured default (config.GenerationSettings)
FORCED_MAX_NEW_TOKENS = 1600  # above the longest call the schemas allow in practice


class TimedCompiler(GrammarCompiler):
    """GrammarCompiler that adds up the time its calls take on the decode path."""

    def __init__(self, tokenizer: Any) -> None:
        super().__init__(tokenizer)
        self.seconds = 0.0
        self.tokens = 0

    def matcher(self, constraint: Constraint) -> RowMatcher | None:
        row = super().matcher(constraint)
        if row is not None:
            consume = row.consume

            def timed_consume(token_id: int) -> None:
                start = time.perf_counter()
                consume(token_id)
                self.seconds += time.perf_counter() - start
                self.tokens += 1

            row.consume = timed_consume  # type: ignore[method-assign]
        return row

    def fill_masks(self, logits: torch.Tensor, matchers: Any) -> None:
        start = time.perf_counter()
        super().fill_masks(logits, matchers)
        self.seconds += time.perf_counter() - start

    def reset(self) -> None:
        self.seconds, self.tokens = 0.0, 0


def prompt(tool: str, dialect: Dialect) -> str:
    return render([Message("system", system_prompt(dialect)), Message("user", ASKS[tool])])


def sampling(max_new_tokens: int) -> GenerationParams:
    """Plain sampling at temperature 1.0 (no top-k / top-p filtering)."""
    return GenerationParams(max_new_tokens=max_new_tokens, temperature=1.0, top_k=0, top_p=1.0)


def is_valid(result: GenerationResult, tool: str) -> bool:
    """The text holds exactly one call, of ``tool``, that pydantic accepts."""
    calls = parse_completion(result.text).calls
    if len(calls) != 1:
        return False
    try:
        return type(validate_call(calls[0])).__name__ == tool
    except ToolValidationError:
        return False


async def run_all(
    backend: TransformersBackend, requests: list[GenerationRequest]
) -> tuple[list[GenerationResult], float]:
    start = time.perf_counter()
    results = await asyncio.gather(*(backend.generate(r) for r in requests))
    return list(results), time.perf_counter() - start


async def validity(backend: TransformersBackend, per_tool: int, free_tokens: int) -> float:
    """Share (percent) of forced generations that validate; prints the breakdown."""
    jobs: list[tuple[str, Dialect]] = [
        (tool, DIALECTS[i % 2]) for tool in TOOLS for i in range(per_tool)
    ]
    forced, _ = await run_all(
        backend,
        [
            GenerationRequest(
                prompt(t, d), sampling(FORCED_MAX_NEW_TOKENS), Constraint("forced", d, (t,))
            )
            for t, d in jobs
        ],
    )
    free, _ = await run_all(
        backend, [GenerationRequest(prompt(t, d), sampling(free_tokens)) for t, d in jobs]
    )
    print(f"{'tool':20} {'dialect':13} {'forced valid':>12} {'free valid':>11}  forced tokens")
    for tool in TOOLS:
        for dialect in DIALECTS:
            rows = [i for i, job in enumerate(jobs) if job == (tool, dialect)]
            ok_forced = sum(is_valid(forced[i], tool) for i in rows)
            ok_free = sum(is_valid(free[i], tool) for i in rows)
            lengths = [forced[i].completion_tokens for i in rows]
            print(
                f"{tool:20} {dialect:13} {ok_forced:>5}/{len(rows):<6} {ok_free:>4}/{len(rows):<6}"
                f"  median {statistics.median(lengths):.0f}, max {max(lengths)}"
            )
    share_forced = 100 * sum(map(is_valid, forced, (t for t, _ in jobs))) / len(jobs)
    share_free = 100 * sum(map(is_valid, free, (t for t, _ in jobs))) / len(jobs)
    over = sum(r.completion_tokens > DEFAULT_MAX_NEW_TOKENS for r in forced)
    print(f"forced: {share_forced:.1f}% of {len(jobs)} valid")
    print(f"unconstrained ({free_tokens} tokens max): {share_free:.1f}% of {len(jobs)} valid")
    print(f"forced generations over the default max_new_tokens={DEFAULT_MAX_NEW_TOKENS}: {over}")
    return share_forced


async def throughput(
    backend: TransformersBackend, compiler: TimedCompiler, tokens: int, repeats: int
) -> float:
    """Best tokens/s of a 16-row batch all forced over the same batch unconstrained."""
    names = list(TOOLS)
    layout: list[tuple[str, Dialect]] = [
        (names[i % len(names)], DIALECTS[i % 2]) for i in range(BATCH)
    ]
    best = {"forced": 0.0, "free": 0.0}
    mask_ms: list[float] = []
    for _ in range(repeats):
        for kind in ("forced", "free"):
            requests = [
                GenerationRequest(
                    prompt(t, d),
                    sampling(tokens),
                    Constraint("forced", d, (t,)) if kind == "forced" else None,
                )
                for t, d in layout
            ]
            compiler.reset()
            results, seconds = await run_all(backend, requests)
            best[kind] = max(best[kind], sum(r.completion_tokens for r in results) / seconds)
            if kind == "forced":
                mask_ms.append(1000 * compiler.seconds / max(compiler.tokens, 1))
    print(
        f"{BATCH}-row batch, {tokens} new tokens each: forced {best['forced']:.0f} tok/s,"
        f" unconstrained {best['free']:.0f} tok/s (best of {repeats})"
    )
    per_token = min(mask_ms)
    print(f"decode-path grammar time (fill_masks + consume): {per_token:.3f} ms per token")
    print(f"  = {per_token * best['free'] / 10:.1f}% of an unconstrained decode step")
    return best["forced"] / best["free"]


def replay_cost(compiler: GrammarCompiler, tokenizer: Any, samples: int) -> None:
    """Mask computation done synchronously (wait for the mask, then consume), per token."""
    tokenize = llguidance.hf.from_tokenizer(tokenizer).tokenize_str
    call = ToolCall(
        "Joke",
        {
            "setup": "Why did the cat sit on the computer? " * 7,
            "answer": "To keep an eye on the mouse. " * 30,
        },
    )
    chat = "Sure! Cats are curious animals; they like warm places & moving things. " * 8
    for mode, text in (("forced", None), ("auto", chat)):
        seconds, tokens = 0.0, 0
        for index in range(samples):
            dialect = DIALECTS[index % 2]
            ids = tokenize(text or format_calls([call], dialect))
            row = compiler.matcher(Constraint(mode, dialect, ("Joke",)))  # type: ignore[arg-type]
            assert row is not None
            for token in ids:
                start = time.perf_counter()
                row.mask()
                row.consume(token)
                seconds += time.perf_counter() - start
                tokens += 1
        print(
            f"mask computation ({mode}, synchronous replay of {tokens} tokens):"
            f" {1000 * seconds / tokens:.3f} ms per token"
        )


async def run(model_dir: Path, quick: bool) -> None:
    holder: dict[str, TimedCompiler] = {}

    def factory(tokenizer: Any) -> TimedCompiler:
        holder["compiler"] = TimedCompiler(tokenizer)
        holder["compiler"].check(
            [Constraint(m, d, (t,)) for m in ("forced", "auto") for d in DIALECTS for t in TOOLS]
        )
        return holder["compiler"]

    backend = TransformersBackend(
        ModelSettings(id=str(model_dir), context_window=4096),
        ExecutorSettings(max_batch_size=BATCH, queue_size=1024, request_timeout=3600),
        sampling(DEFAULT_MAX_NEW_TOKENS),
        grammar_factory=factory,
    )
    await backend.start()
    try:
        share = await validity(
            backend, per_tool=4 if quick else 50, free_tokens=48 if quick else 256
        )
        ratio = await throughput(
            backend, holder["compiler"], tokens=40 if quick else 128, repeats=2 if quick else 3
        )
        replay_cost(holder["compiler"], backend.tokenizer, samples=2 if quick else 10)
    finally:
        await backend.close()
    print(f"forced_valid={share:.1f}")
    print(f"grammar_vs_free={ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (under a minute)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        build_tiny_model(Path(tmp))
        asyncio.run(run(Path(tmp), args.quick))
    print(f"(took {time.perf_counter() - started:.0f}s)")


if __name__ == "__main__":
    main()
