"""Counting prompt tokens without torch: tokenizer files only, else an estimate.

A local tokenizer (``tokenizer.model`` through SentencePiece, or
``tokenizer.json`` through tokenizers) counts exactly. Without one, the
server's ``/tokenize`` measures characters per token on a sample at start and
prompts are estimated from that with a margin; failing that, a conservative
fixed ratio is used. Special-token strings count as text, as everywhere.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

_log = logging.getLogger(__name__)

TokenCounter = Callable[[str], int]
# Characters per token assumed when nothing better is known (English is about 4).
FALLBACK_CHARS_PER_TOKEN = 2.5
# Estimates are inflated by this much so trimming errs on the short side.
ESTIMATE_MARGIN = 1.15
_SAMPLE = "The quick brown fox jumps over the lazy dog. " * 8


def _local_files(source: str) -> Path | None:
    """A directory with tokenizer files: ``source`` itself, or its Hugging Face cache entry."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        return path.parent
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with tokenizers
        return None
    for name in ("tokenizer.model", "tokenizer.json"):
        try:
            cached = try_to_load_from_cache(source, name)
        except ValueError:  # not a hub id either
            return None
        if isinstance(cached, str):
            return Path(cached).parent
    return None


def load_tokenizer_counter(source: str) -> TokenCounter | None:
    """An exact counter from the tokenizer files of ``source`` (path or hub id), or None."""
    directory = _local_files(source)
    if directory is None:
        return None
    if (directory / "tokenizer.model").is_file():
        import sentencepiece

        processor = sentencepiece.SentencePieceProcessor(
            model_file=str(directory / "tokenizer.model")
        )
        return lambda text: len(processor.encode(text))
    if (directory / "tokenizer.json").is_file():
        import tokenizers

        tokenizer = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
        tokenizer.encode_special_tokens = True
        return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)
    return None


def estimating_counter(chars_per_token: float) -> TokenCounter:
    """A counter that estimates from ``chars_per_token``, rounded up, with a margin."""
    ratio = chars_per_token / ESTIMATE_MARGIN
    return lambda text: math.ceil(len(text) / ratio)


async def calibrated_counter(
    session: aiohttp.ClientSession, roots: Sequence[str], headers: dict[str, str], timeout: float
) -> TokenCounter | None:
    """An estimating counter calibrated with the first server's ``/tokenize`` that answers
    (llama.cpp takes ``content``, vLLM ``prompt``), or None."""
    for root in roots:
        try:
            async with session.post(
                f"{root}/tokenize",
                json={"content": _SAMPLE, "prompt": _SAMPLE},
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                answer: Any = await response.json(content_type=None)
            count = answer.get("count") or len(answer.get("tokens") or [])
        except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError):
            continue
        if count:
            _log.info("counting tokens estimated from %s/tokenize", root)
            return estimating_counter(len(_SAMPLE) / count)
    return None
