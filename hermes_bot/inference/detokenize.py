"""Incremental detokenization: deltas that never split a character and join to the full text.

As serving engines do, each token decodes only a short window of the latest
tokens, never the whole answer: the window starts a few tokens back (left
context, so SentencePiece's leading-space rule and byte-fallback pieces come
out as in the whole text), and the delta is what its text gained. The window
moves forward every ``WINDOW`` tokens, so the cost per token does not grow
with the answer's length.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_REPLACEMENT = "\ufffd"


def decode(tokenizer: Any, ids: list[int]) -> str:
    """The completion text of ``ids`` (special tokens dropped)."""
    return tokenizer.decode(ids, skip_special_tokens=True)


def _fast_decode(tokenizer: Any) -> Callable[[list[int]], str]:
    """``decode`` for ``tokenizer``, straight through its Rust tokenizer when that gives the
    same text (no clean-up pass): half the cost of the Python wrapper."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or getattr(tokenizer, "clean_up_tokenization_spaces", True):
        return lambda ids: decode(tokenizer, ids)
    return lambda ids: backend.decode(ids, skip_special_tokens=True)


# The window is re-anchored once it holds this many tokens, keeping ``CONTEXT`` of them.
WINDOW = 16
CONTEXT = 4


class IncrementalDetokenizer:
    """Turns the token ids of one completion, one at a time, into text deltas."""

    def __init__(self, tokenizer: Any) -> None:
        self._decode = _fast_decode(tokenizer)
        self._ids: list[int] = []
        self._start = 0  # first token of the window
        self._window_text = ""  # text of the window already sent
        self.text = ""  # everything sent so far

    def push(self, token: int) -> str:
        """The new text once ``token`` is appended ("" while a character is incomplete)."""
        self._ids.append(token)
        return self._advance(final=False)

    def flush(self) -> str:
        """Whatever is still held back (at the end of the completion)."""
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> str:
        text = self._decode(self._ids[self._start :])
        if len(text) <= len(self._window_text) or (not final and text.endswith(_REPLACEMENT)):
            return ""
        delta = text[len(self._window_text) :]
        self._window_text = text
        self.text += delta
        if len(self._ids) - self._start >= WINDOW:
            self._start = len(self._ids) - CONTEXT
            self._window_text = self._decode(self._ids[self._start :])
        return delta
