"""Markdown as the model writes it → Slack mrkdwn, and Slack's markup in user text → plain text.

Model text is escaped first (``&``, ``<``, ``>``), so it can never form a
``<!here>``, ``<!channel>``, ``<@U…>`` or ``<!subteam^…>`` mention; the only
angle-bracket markup in the output is the links built here from http(s) URLs.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_FENCE = re.compile(r"(```.*?(?:```|\Z))", re.DOTALL)
_INLINE_CODE = re.compile(r"(`[^`\n]+`)")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^\s()]+)\)")
_BARE_URL = re.compile(r"(?<![|\w])(https?://[^\s<>|]+[^\s<>|.,;:!?)\]'\"])")
_EMPHASIS = re.compile(
    r"\*\*(?P<b1>[^*\n]+?)\*\*|__(?P<b2>[^_\n]+?)__|~~(?P<s>[^~\n]+?)~~"
    r"|(?<![*\w])\*(?P<i1>[^*\s](?:[^*\n]*?[^*\s])?)\*(?![*\w])"
    r"|(?<![_\w])_(?P<i2>[^_\s](?:[^_\n]*?[^_\s])?)_(?![_\w])"
)
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_BULLET = re.compile(r"^(\s*)[-*+]\s+", re.MULTILINE)
_SLACK_MARKUP = re.compile(r"<([@#!])([^>|]+)(?:\|([^>]*))?>|<(https?://[^>|]+)(?:\|([^>]*))?>")


def escape(text: str) -> str:
    """Text shown literally: Slack's three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _emphasis(match: re.Match[str]) -> str:
    groups = match.groupdict()
    if groups["b1"] or groups["b2"]:
        return f"*{groups['b1'] or groups['b2']}*"
    if groups["s"]:
        return f"~{groups['s']}~"
    return f"_{groups['i1'] or groups['i2']}_"


def _link_label(label: str) -> str:
    return label.replace("|", "/").replace("*", "").strip() or "link"


def _prose(text: str) -> str:
    """Convert escaped prose (no code): headings, bullets, emphasis, links."""
    text = _HEADING.sub(r"**\1**", text)
    text = _BULLET.sub(r"\1• ", text)
    links: list[str] = []

    def hold(link: str) -> str:
        links.append(link)
        return f"\x00{len(links) - 1}\x00"

    text = _LINK.sub(lambda m: hold(f"<{m.group(2)}|{_link_label(m.group(1))}>"), text)
    text = _BARE_URL.sub(lambda m: hold(f"<{m.group(1)}>"), text)
    text = _EMPHASIS.sub(_emphasis, text)
    return re.sub(r"\x00(\d+)\x00", lambda m: links[int(m.group(1))], text)


def to_mrkdwn(markdown: str) -> str:
    """Slack mrkdwn for ``markdown``: bold, italics, strike, code, links, lists, headings."""
    parts = []
    for i, block in enumerate(_FENCE.split(escape(markdown))):
        if i % 2:
            parts.append(block)
            continue
        for j, piece in enumerate(_INLINE_CODE.split(block)):
            parts.append(piece if j % 2 else _prose(piece))
    return "".join(parts)


def to_plain(text: str, name_of: Callable[[str], str]) -> str:
    """A user's Slack message as prompt text: mentions as names, links as URLs, unescaped."""

    def replace(match: re.Match[str]) -> str:
        sigil, ident, label, url, url_label = match.groups()
        if url is not None:
            return f"{url_label} ({url})" if url_label else url
        if sigil == "@":
            return f"@{label or name_of(ident)}"
        if sigil == "#":
            return f"#{label or ident}"
        return f"@{(label or ident).split('^')[0]}"

    plain = _SLACK_MARKUP.sub(replace, text)
    return plain.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
