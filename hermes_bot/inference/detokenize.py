"""Incremental detokenization: deltas that never split a character and join to the full text.

Two ways, chosen per tokenizer (``IncrementalDetokenizer(tokenizer)`` gives one or the other):

* pieces (as llama.cpp's token-to-piece): a table of each token id's piece,
  built once per tokenizer for SentencePiece with byte fallback (Mistral,
  Llama 2): ``▁`` is a space, ``<0xNN>`` is one raw byte, special tokens are
  dropped and the text's first leading space is stripped. Its decoder turns a
  run of byte pieces into text only as a whole (a run that is not valid UTF-8
  becomes one U+FFFD per byte, even where it began with a valid character), so
  a run is held back until a text piece or the end closes it. A push is a
  dictionary lookup. The table is used only once it reproduces ``decode`` on a
  sample: the whole vocabulary, spaces, multi-byte characters, special tokens,
  invalid byte runs and the first-piece space.
* window (any other tokenizer): each token decodes only a short window of the
  latest tokens (as vLLM's incremental detokenizer): the window starts a few
  tokens back (left context, so leading-space rules and multi-byte characters
  come out as in the whole text), and the delta is what its text gained. The
  window moves forward every ``WINDOW`` tokens, to a start whose text is what
  was already sent, so the cost per token does not grow with the answer.
"""

from __future__ import annotations

import re
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

_REPLACEMENT = "\ufffd"

# Token id -> its text, or its byte (an int) for a byte-fallback piece; special tokens are absent.
Pieces = dict[int, str | int]


def decode(tokenizer: Any, ids: list[int]) -> str:
    """The completion text of ``ids`` (special tokens dropped)."""
    return tokenizer.decode(ids, skip_special_tokens=True)


class IncrementalDetokenizer(ABC):
    """Turns the token ids of one completion, one at a time, into text deltas: by the piece
    table where the tokenizer has a proven one, else by decoding windows."""

    def __new__(cls, tokenizer: Any, *args: Any) -> IncrementalDetokenizer:
        if cls is IncrementalDetokenizer:
            cls = PieceDetokenizer if piece_table(tokenizer) is not None else WindowDetokenizer
        return super().__new__(cls)

    def __init__(self, tokenizer: Any) -> None:
        self._sent: list[str] = []

    @property
    def text(self) -> str:
        """Everything sent so far."""
        return "".join(self._sent)

    @abstractmethod
    def push(self, token: int) -> str:
        """The new text once ``token`` is appended ("" while a character is incomplete)."""

    @abstractmethod
    def flush(self) -> str:
        """Whatever is still held back (at the end of the completion)."""


class PieceDetokenizer(IncrementalDetokenizer):
    """Deltas by table lookup (see the module docstring): ``tokenizer``'s proven table, or
    ``pieces`` while it is being proven."""

    def __init__(self, tokenizer: Any, pieces: Pieces | None = None) -> None:
        super().__init__(tokenizer)
        table = pieces if pieces is not None else piece_table(tokenizer)
        if table is None:
            raise ValueError("this tokenizer's piece table does not reproduce its decode")
        self._pieces = table
        self._run = bytearray()  # byte pieces not yet closed by a text piece
        self._started = False  # whether the text's first character (a space to strip) was seen

    def push(self, token: int) -> str:
        piece = self._pieces.get(token)
        if piece is None:
            return ""
        if isinstance(piece, int):
            self._run.append(piece)
            return ""
        if self._run or not self._started:
            piece = self._settle(piece)
        self._sent.append(piece)
        return piece

    def flush(self) -> str:
        text = self._settle("")
        self._sent.append(text)
        return text

    def _settle(self, piece: str) -> str:
        """``piece`` after the held byte run, without the text's first space."""
        if self._run:
            try:
                piece = self._run.decode() + piece
            except UnicodeDecodeError:
                piece = _REPLACEMENT * len(self._run) + piece
            self._run.clear()
        if piece and not self._started:
            self._started = True
            if piece[0] == " ":
                piece = piece[1:]
        return piece


_BYTE_PIECE = re.compile(r"<0x([0-9A-F]{2})>")
_tables: weakref.WeakKeyDictionary[Any, Pieces | None] = weakref.WeakKeyDictionary()


def piece_table(tokenizer: Any) -> Pieces | None:
    """``tokenizer``'s piece table, built and checked on first use; None where it does not
    reproduce ``decode`` (then the window way is used)."""
    if tokenizer not in _tables:
        pieces = _build_table(tokenizer)
        _tables[tokenizer] = pieces if pieces is not None and _proven(pieces, tokenizer) else None
    return _tables[tokenizer]


def _build_table(tokenizer: Any) -> Pieces | None:
    special = set(tokenizer.all_special_ids)
    special.update(t for t, added in tokenizer.added_tokens_decoder.items() if added.special)
    pieces: Pieces = {}
    for token, piece in enumerate(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))):
        if not isinstance(piece, str):
            return None
        if token not in special:
            byte = _BYTE_PIECE.fullmatch(piece)
            pieces[token] = int(byte[1], 16) if byte else piece.replace("\u2581", " ")
    return pieces


# Spaces (leading, doubled, a tab, a newline), accents, CJK, emoji and the clean-up patterns
# some tokenizers apply (" ," " 't").
_SAMPLE = " Héllo wörld — 世界 🦜 ꙮ done\n  two  spaces\tand\n\nlines , isn 't it ? "


def _proven(pieces: Pieces, tokenizer: Any) -> bool:
    """Whether streaming by ``pieces`` gives ``decode``'s text on a sample (see the module
    docstring)."""

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False).input_ids

    added = sorted(tokenizer.added_tokens_decoder)
    parrot = encode("🦜€")
    samples = [
        list(range(len(tokenizer) + 1)),  # every piece once, and an id past the vocabulary
        encode(_SAMPLE),
        [*added, *encode(_SAMPLE), *added, *encode("x" + _SAMPLE), *added],
        [*parrot[::-1], *encode(" x"), *parrot[:-1]],  # runs of bytes that are not UTF-8
    ]
    for ids in samples:
        stream = PieceDetokenizer(tokenizer, pieces)
        text = "".join(stream.push(token) for token in ids) + stream.flush()
        if not text == stream.text == decode(tokenizer, ids):
            return False
    return True


def _fast_decode(tokenizer: Any) -> Callable[[list[int]], str]:
    """``decode`` for ``tokenizer``, straight through its Rust tokenizer when that gives the
    same text (no clean-up pass): half the cost of the Python wrapper."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or getattr(tokenizer, "clean_up_tokenization_spaces", True):
        return lambda ids: decode(tokenizer, ids)
    return lambda ids: backend.decode(ids, skip_special_tokens=True)


# The window moves once it holds this many tokens, keeping at least ``CONTEXT`` of them.
WINDOW = 16
CONTEXT = 4


class WindowDetokenizer(IncrementalDetokenizer):
    """Deltas by decoding a window of the latest tokens (see the module docstring)."""

    def __init__(self, tokenizer: Any) -> None:
        super().__init__(tokenizer)
        self._decode = _fast_decode(tokenizer)
        self._ids: list[int] = []
        self._start = 0  # first token of the window
        self._window_text = ""  # text of the window already sent

    def push(self, token: int) -> str:
        self._ids.append(token)
        return self._advance(final=False)

    def flush(self) -> str:
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> str:
        text = self._decode(self._ids[self._start :])
        if len(text) <= len(self._window_text) or (not final and text.endswith(_REPLACEMENT)):
            return ""
        delta = text[len(self._window_text) :]
        self._window_text = text
        self._sent.append(delta)
        if len(self._ids) - self._start >= WINDOW:
            self._move_window()
        return delta

    def _move_window(self) -> None:
        """Start the window later, where its text is the end of the text sent (not in the
        middle of a character's bytes); else it stays, to try again at the next delta."""
        end = len(self._ids) - CONTEXT
        for start in range(end, max(self._start, end - 4), -1):  # a character has 4 bytes at most
            text = self._decode(self._ids[start:])
            if self._window_text.endswith(text):
                self._start, self._window_text = start, text
                return
