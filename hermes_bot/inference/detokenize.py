"""Incremental detokenization: deltas that never split a character and join to the full text.

Like serving engines do, each step decodes only a few tokens: those since the
``prefix`` offset (a handful of tokens of left context, so SentencePiece's
leading-space rule and byte-fallback pieces come out as in the whole text)
and compares with the text of the tokens before the ``read`` offset. The cost
per token does not grow with the answer's length.
"""

from __future__ import annotations

from typing import Any

_REPLACEMENT = "\ufffd"


def decode(tokenizer: Any, ids: list[int]) -> str:
    """The completion text of ``ids`` (special tokens dropped)."""
    return tokenizer.decode(ids, skip_special_tokens=True)


class IncrementalDetokenizer:
    """Turns the token ids of one completion, one at a time, into text deltas."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix = 0  # first token of the left context
        self._read = 0  # first token whose text has not been sent
        self._prefix_text = ""  # text of ids[prefix:read]
        self.text = ""  # everything sent so far

    def push(self, token: int) -> str:
        """The new text once ``token`` is appended ("" while a character is incomplete)."""
        self._ids.append(token)
        return self._advance(final=False)

    def flush(self) -> str:
        """Whatever is still held back (at the end of the completion)."""
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> str:
        text = decode(self._tokenizer, self._ids[self._prefix :])
        if len(text) <= len(self._prefix_text) or (not final and text.endswith(_REPLACEMENT)):
            return ""
        delta = text[len(self._prefix_text) :]
        self._prefix, self._read = self._read, len(self._ids)
        self._prefix_text = decode(self._tokenizer, self._ids[self._prefix : self._read])
        self.text += delta
        return delta
