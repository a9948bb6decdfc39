"""Incremental detokenization: deltas that never split a character and join to the full text."""

from __future__ import annotations

import logging
from typing import Any

_log = logging.getLogger(__name__)

_REPLACEMENT = "\ufffd"


def decode(tokenizer: Any, ids: list[int]) -> str:
    """The completion text of ``ids`` (special tokens dropped)."""
    return tokenizer.decode(ids, skip_special_tokens=True)


class TextDecoder:
    """Turns a growing list of token ids into text deltas.

    Each call decodes the whole completion so SentencePiece's leading-space rule
    and byte-fallback pieces come out exactly as in the final text; text that
    ends in U+FFFD (a character whose bytes have not all arrived) is held back.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self.sent = ""

    def delta(self, ids: list[int], *, final: bool = False) -> str:
        """New text since the last call; ``final`` releases anything held back."""
        text = decode(self._tokenizer, ids)
        if not final and text.endswith(_REPLACEMENT):
            return ""
        if not text.startswith(self.sent):
            # Cannot happen with SentencePiece; the stream just stops growing if it does.
            _log.warning("decoded text changed under the stream; dropping a delta")
            return ""
        piece, self.sent = text[len(self.sent) :], text
        return piece
