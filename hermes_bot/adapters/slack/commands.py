"""What a Slack user can ask for: the commands, how they read, which conversation they join.

One command per registered tool (its declaration gives the name, option and
prompt), plus ``/chat``, ``/reset``, ``/forget-me`` and ``/status``. They work as slash commands
(``/song synthwave``) and, where Slack has none (threads), after a mention
(``@hermes /song synthwave``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hermes_bot.tool_spec import ToolSpec
from hermes_bot.tools import SPECS

REFUSAL = "Sorry, I'm not enabled for you here. Ask a workspace admin if you think I should be."
RESET_NOTICE = "🧹 Conversation forgotten. Let's start fresh."
_COMMAND = re.compile(r"^/([a-z][a-z0-9_-]*)(?:\s+(.*))?$", re.DOTALL)
BUILT_IN = ("chat", "reset", "forget-me", "status")


@dataclass(frozen=True)
class Command:
    """A parsed command: its prompt and forced tool, or the usage line when misused."""

    name: str
    prompt: str = ""
    forced_tool: str | None = None
    usage: str | None = None


def forgotten_notice(removed: int) -> str:
    """What /forget-me tells the user."""
    return f"🗑️ Deleted {removed} of your messages and my answers to them, everywhere."


def command_names() -> list[str]:
    """One command per registered tool (in registry order), then the built-in ones."""
    return [spec.command for spec in SPECS.values()] + list(BUILT_IN)


def _tool_command(spec: ToolSpec, text: str) -> Command:
    name, option = spec.command, spec.option
    if option is None:
        prompt = spec.command_prompt()
        return Command(name, f"{prompt} About: {text}" if text else prompt, spec.name)
    if not text:
        return Command(name, usage=f"Usage: `/{name} <{option.name}>` ({option.description})")
    if len(text) > option.max_length:
        usage = f"`/{name}`: keep the {option.name} under {option.max_length} characters."
        return Command(name, usage=usage)
    return Command(name, spec.command_prompt(text), spec.name)


def build_command(name: str, text: str) -> Command | None:
    """The command ``/name text``, or None when ``name`` is not one of the bot's."""
    text = text.strip()
    spec = next((spec for spec in SPECS.values() if spec.command == name), None)
    if spec is not None:
        return _tool_command(spec, text)
    if name == "chat":
        return Command(name, text) if text else Command(name, usage="Usage: `/chat <your message>`")
    return Command(name) if name in BUILT_IN else None


def parse_command(text: str) -> Command | None:
    """A command written after a mention (``/reset``, ``/song jazz``), or None for chat."""
    match = _COMMAND.match(text.strip())
    if match is None:
        return None
    return build_command(match.group(1), match.group(2) or "")


def conversation_key(team: str, channel: str, thread_ts: str | None, *, dm: bool) -> str:
    """One conversation per thread; a DM is one; a channel's top level (slash commands) is one."""
    if dm:
        return f"slack:{team}:dm:{channel}"
    if thread_ts is not None:
        return f"slack:{team}:thread:{channel}:{thread_ts}"
    return f"slack:{team}:channel:{channel}"
