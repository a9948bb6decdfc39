"""Plain-text helpers shared by the adapters: safe truncation, and splitting under a limit.

Splitting never breaks a code block: a chunk that ends inside a fence closes it,
and the next chunk reopens it with the same language tag.
"""

from __future__ import annotations

import re

FENCE = "```"
_CLOSE = "\n" + FENCE
_LANGUAGE = re.compile(r"[\w+#.-]{0,20}")


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marked with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return text[:limit]
    return text[: limit - 1].rstrip() + "…"


def _hard_cut(line: str, cap: int) -> int:
    """Where to cut a line with no space: inside a run of backticks only after whole fences,
    so the pieces hold as many fences as the line."""
    if line[cap - 1 : cap + 1] != "``":
        return cap
    start = cap - 1
    while start > 0 and line[start - 1] == "`":
        start -= 1
    return start + (cap - start) // 3 * 3 or cap


def _pieces(text: str, cap: int) -> list[str]:
    """The text as pieces of at most ``cap`` characters, cut at line ends or spaces."""
    pieces: list[str] = []
    for line in text.splitlines(keepends=True):
        while len(line) > cap:
            cut = line.rfind(" ", cap // 2, cap)
            cut = _hard_cut(line, cap) if cut < 0 else cut + 1
            pieces.append(line[:cut])
            line = line[cut:]
        if line:
            pieces.append(line)
    return pieces


def _after(fence: str | None, piece: str) -> str | None:
    """The open fence (its opening line) after ``piece``, given the one before it."""
    if piece.count(FENCE) % 2 == 0:
        return fence
    if fence is not None:
        return None
    tag = piece.rsplit(FENCE, 1)[1].strip()
    return FENCE + (tag if _LANGUAGE.fullmatch(tag) else "")


def _close(body: str, fence: str | None) -> str:
    body = body.rstrip()
    return body + _CLOSE if fence is not None else body


def split_text(text: str, limit: int) -> list[str]:
    """Chunks of ``text``, each at most ``limit`` characters and never empty."""
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    chunks: list[str] = []
    body = ""
    fence: str | None = None
    for piece in _pieces(text, max(8, limit // 4)):
        after = _after(fence, piece)
        needed = len(body) + len(piece) + (len(_CLOSE) if after is not None else 0)
        if body.strip() and needed > limit:
            chunks.append(_close(body, fence))
            body = fence + "\n" if fence is not None else ""
        body += piece
        fence = after
    if body.strip():
        chunks.append(_close(body, fence))
    return [chunk for chunk in chunks if chunk.strip()]
