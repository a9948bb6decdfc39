"""ChatML prompts in both tool dialects, call rendering, and history trimming.

OpenHermes-2.5 speaks ChatML. The ``functioncall`` dialect (the seed's format,
default for OpenHermes-2.5) and the ``tool_call`` dialect (Hermes-2-Pro, Hermes-3)
differ only in how the functions are listed and how calls are written.
User text can never become a control token: :func:`neutralize` breaks up
special-token strings before they reach a prompt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from hermes_bot.backend import Dialect
from hermes_bot.call_format import FUNCTIONCALL, IM_END, IM_START, TOOL_CALL, call_format
from hermes_bot.errors import PromptTooLong
from hermes_bot.tools import ToolCall, function_schemas

Role = Literal["system", "user", "assistant"]

_SPECIAL_TOKEN = re.compile(r"<(\|[^<>\n]{0,40}\||/?s|unk)>", re.IGNORECASE)
_ZERO_WIDTH_SPACE = "\u200b"

_NEWER_HERMES = re.compile(r"hermes-?(2-?pro|3|4)", re.IGNORECASE)


@dataclass(frozen=True)
class Message:
    """One ChatML message."""

    role: Role
    content: str


def resolve_dialect(setting: str, model_id: str) -> Dialect:
    """The configured dialect; ``auto`` picks ``tool_call`` for Hermes-2-Pro and later."""
    if setting in ("functioncall", "tool_call"):
        return setting  # type: ignore[return-value]
    return "tool_call" if _NEWER_HERMES.search(model_id) else "functioncall"


def neutralize(text: str) -> str:
    """Break special-token strings (``<|im_end|>``, ``<s>``, ...) so they tokenize as text."""
    return _SPECIAL_TOKEN.sub(lambda match: f"<{_ZERO_WIDTH_SPACE}{match.group(1)}>", text)


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def format_calls(calls: Sequence[ToolCall], dialect: Dialect) -> str:
    """Calls written exactly as the model is asked to write them (and as grammars force)."""
    payloads = [_compact({"name": call.name, "arguments": call.arguments}) for call in calls]
    return call_format(dialect).write(payloads)


_FUNCTIONCALL_INSTRUCTIONS = """\
You are Hermes, a friendly assistant chatting with people in a group chat.
You have access to the following functions:

{schemas}

When one of these functions fits the user's request, call it by answering with
{example}
with every required argument filled in and nothing else. If no function fits,
answer politely in plain text without any function call."""

_TOOL_CALL_INSTRUCTIONS = """\
You are Hermes, a friendly assistant chatting with people in a group chat.
You are a function calling AI model. You are provided with function signatures
within <tools></tools> XML tags. When one of them fits the user's request, call it.
<tools>
{schemas}
</tools>
For each function call return a json object with function name and arguments
within {open}{close} XML tags as follows:
{example}
If no function fits, answer politely in plain text without any function call."""


def system_prompt(dialect: Dialect, extra: str = "") -> str:
    """The system prompt listing the tools' schemas in ``dialect``."""
    schemas = function_schemas()
    if dialect == "tool_call":
        listed = "\n".join(_compact({"type": "function", "function": s}) for s in schemas)
        example = TOOL_CALL.write(['{"name": <function-name>, "arguments": <args-dict>}'])
        prompt = _TOOL_CALL_INSTRUCTIONS.format(
            schemas=listed, open=TOOL_CALL.open, close=TOOL_CALL.close, example=example
        )
    else:
        listed = "\n".join(json.dumps(s, ensure_ascii=False) for s in schemas)
        example = FUNCTIONCALL.write(['{"name": "<function name>", "arguments": {<arguments>}}'])
        prompt = _FUNCTIONCALL_INSTRUCTIONS.format(schemas=listed, example=example)
    return f"{prompt}\n\n{extra.strip()}" if extra.strip() else prompt


class SystemPrompts:
    """The system prompt in one dialect, plus per-channel instructions where configured."""

    def __init__(
        self, dialect: Dialect, extra: str = "", channels: Mapping[str, str] | None = None
    ) -> None:
        self.default = neutralize(system_prompt(dialect, extra))
        self._by_channel = {
            channel: neutralize(system_prompt(dialect, f"{extra}\n\n{instructions}"))
            for channel, instructions in (channels or {}).items()
        }

    def for_channels(self, channel_ids: Sequence[str]) -> str:
        """The prompt of the first configured channel in ``channel_ids`` (a thread, then its
        parent), else the default."""
        return next(
            (self._by_channel[c] for c in channel_ids if c in self._by_channel), self.default
        )


def attributed(name: str, text: str) -> str:
    """``text`` as said by ``name`` in a shared conversation (the name kept to one short line)."""
    speaker = " ".join(name.replace(":", " ").split())[:64] or "someone"
    return f"{speaker}: {text}"


def render(messages: Sequence[Message], *, add_generation_prompt: bool = True) -> str:
    """ChatML text for ``messages``; contents must already be neutralized."""
    parts = [f"{IM_START}{m.role}\n{m.content}{IM_END}\n" for m in messages]
    if add_generation_prompt:
        parts.append(f"{IM_START}assistant\n")
    return "".join(parts)


def build_prompt(
    system: str,
    history: Sequence[Message],
    new_messages: Sequence[Message],
    *,
    count_tokens: Callable[[str], int],
    budget: int,
) -> str:
    """The prompt with as much recent history as fits in ``budget`` tokens.

    Whole exchanges are dropped oldest first; the system prompt and the new
    messages are always kept, and PromptTooLong is raised if they alone don't fit.
    """
    head = render([Message("system", system)], add_generation_prompt=False)
    tail = render(new_messages)
    used = count_tokens(head) + count_tokens(tail)
    if used > budget:
        raise PromptTooLong(
            f"prompt needs {used} tokens, budget is {budget}",
            user_message="That message is too long for me to answer. Shorten it and try again.",
        )
    kept: list[str] = []
    for message in reversed(history):
        text = render([message], add_generation_prompt=False)
        cost = count_tokens(text)
        if used + cost > budget:
            break
        kept.append(text)
        used += cost
    # Never start the kept history with an assistant turn cut off from its question.
    while kept and kept[-1].startswith(f"{IM_START}assistant"):
        kept.pop()
    return head + "".join(reversed(kept)) + tail
