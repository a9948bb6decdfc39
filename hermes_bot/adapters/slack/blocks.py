"""Replies as Slack messages: Block Kit cards for the tools, mrkdwn sections for text.

Every message stays inside Slack's limits (3,000 characters a section, 50
blocks, 40,000 characters of text): long text continues in more messages.
Each message carries a plain-text fallback for notifications. Model text is
escaped everywhere, so nothing it writes can ping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hermes_bot.adapters.slack.mrkdwn import escape, to_mrkdwn
from hermes_bot.adapters.status import status_fields
from hermes_bot.adapters.text import split_text, truncate
from hermes_bot.backend import BackendStats
from hermes_bot.pipeline import ErrorReply, Reply, TextReply, ToolReply
from hermes_bot.tools import Tool, card_of, spec_of

Block = dict[str, Any]

SECTION_LIMIT = 3000
HEADER_LIMIT = 150
BUTTON_VALUE_LIMIT = 2000
MAX_BLOCKS = 50
SECTIONS_PER_MESSAGE = 10  # 30,000 characters: under the 40,000 a message may carry
FALLBACK_LIMIT = 300
FOOTER = "hermes-bot · AI-generated, double-check before relying on it"
REVEAL = "hermes_reveal"
FOLLOW_UP = "hermes_follow_up:"  # then the tool's name
SECTION_FIELDS = 10
FIELD_LIMIT = 2000


@dataclass
class SlackMessage:
    """One message as it should look: fallback text and blocks."""

    text: str
    blocks: list[Block] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


def section(mrkdwn: str) -> Block:
    """A mrkdwn section shown verbatim (Slack parses no mentions or channel names in it)."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn, "verbatim": True}}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": truncate(text, HEADER_LIMIT)}}


def context(mrkdwn: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn, "verbatim": True}]}


def button(label: str, action_id: str, value: str) -> Block:
    text = {"type": "plain_text", "text": label, "emoji": True}
    return {"type": "button", "text": text, "action_id": action_id, "value": value}


def _fallback(mrkdwn: str) -> str:
    return truncate(mrkdwn, FALLBACK_LIMIT)


def text_messages(markdown: str, *, mark: str = "") -> list[SlackMessage]:
    """``markdown`` as mrkdwn sections, as many messages as Slack's limits need."""
    chunks = split_text(to_mrkdwn(markdown), SECTION_LIMIT - len(mark))
    if not chunks:
        return []
    chunks[-1] += mark
    return [
        SlackMessage(_fallback(group[0]), [section(chunk) for chunk in group])
        for group in (
            chunks[i : i + SECTIONS_PER_MESSAGE]
            for i in range(0, len(chunks), SECTIONS_PER_MESSAGE)
        )
    ]


def tool_card(tool: Tool) -> SlackMessage:
    """The card of any validated tool, from its declaration: the headline, fields and
    links, the secret behind a button, and the follow-up button."""
    spec, card = spec_of(tool), card_of(tool)
    title = f"{card.emoji} {card.title}"
    blocks = [header(title), section(f"*{escape(truncate(card.headline, SECTION_LIMIT - 2))}*")]
    fields = [_field(label, escape(value)) for label, value in card.fields]
    if card.links:
        links = " · ".join(f"<{url}|{escape(label)}>" for label, url in card.links)
        fields.append(_field(card.links_label or "Links", links))
    if fields:
        blocks.append({"type": "section", "fields": fields[:SECTION_FIELDS]})
    buttons = []
    if card.secret is not None:
        buttons.append(button("Show answer", REVEAL, truncate(card.secret, BUTTON_VALUE_LIMIT)))
    if spec.follow_up is not None:
        label = f"{spec.follow_up.emoji} {spec.follow_up.label}".strip()
        buttons.append(button(label, f"{FOLLOW_UP}{spec.name}", spec.name))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    blocks.append(context(FOOTER))
    return SlackMessage(f"{title}: {_fallback(escape(card.headline))}", blocks)


def _field(label: str, mrkdwn: str) -> Block:
    return {"type": "mrkdwn", "text": truncate(f"*{escape(label)}*\n{mrkdwn}", FIELD_LIMIT)}


def reply_messages(reply: Reply) -> list[SlackMessage]:
    """The messages a reply occupies, in order."""
    match reply:
        case TextReply(text=text):
            return text_messages(text) or [SlackMessage("…", [section("…")])]
        case ToolReply(tools=tools, text=text):
            messages = text_messages(text)
            for tool in tools:
                card = tool_card(tool)
                last = messages[-1] if messages else None
                if last is not None and len(last.blocks) + len(card.blocks) <= MAX_BLOCKS:
                    last.blocks.extend(card.blocks)
                else:
                    messages.append(card)
            return messages
        case ErrorReply(message=message):
            return [SlackMessage(escape(f"⚠️ {message}"), [section(escape(f"⚠️ {message}"))])]
    raise TypeError(f"unknown reply {reply!r}")


def notice_message(text: str) -> SlackMessage:
    """A short notice from the bot itself (already safe mrkdwn)."""
    return SlackMessage(text, [section(text)])


def status_message(
    stats: BackendStats, uptime: float, history: int, turns: str = ""
) -> SlackMessage:
    """The /status card."""
    fields = [
        {"type": "mrkdwn", "text": f"*{label}*\n{escape(value)}"}
        for label, value in status_fields(stats, uptime, history, turns)
    ]
    return SlackMessage(
        f"Status: {escape(stats.model)}",
        [header("📊 Status"), {"type": "section", "fields": fields}],
    )
