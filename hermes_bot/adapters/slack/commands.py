"""What a Slack user can ask for: the commands, how they read, which conversation they join.

The same commands work as slash commands (``/song synthwave``) and, where Slack
has no slash commands (threads), after a mention (``@hermes /song synthwave``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REFUSAL = "Sorry, I'm not enabled for you here. Ask a workspace admin if you think I should be."
RESET_NOTICE = "🧹 Conversation forgotten. Let's start fresh."
ANOTHER_JOKE = "Tell me another joke, a different one."
_COMMAND = re.compile(r"^/([a-z]+)(?:\s+(.*))?$", re.DOTALL)


@dataclass(frozen=True)
class Spec:
    """One command: the tool it forces, its prompt, and whether it needs text."""

    forced_tool: str | None
    prompt: str
    argument: str | None = None
    """What the text means; None when the command takes none."""
    optional: bool = False


COMMANDS: dict[str, Spec] = {
    "joke": Spec("Joke", "Tell me a joke.", "a topic", optional=True),
    "song": Spec("SongRecommendation", "Recommend me a song. My interest: {text}", "your interest"),
    "book": Spec("BookRecommendation", "Recommend me a book. My interest: {text}", "your interest"),
    "chat": Spec(None, "{text}", "your message"),
    "reset": Spec(None, ""),
    "status": Spec(None, ""),
}


@dataclass(frozen=True)
class Command:
    """A parsed command: its prompt and forced tool, or the usage line when misused."""

    name: str
    prompt: str = ""
    forced_tool: str | None = None
    usage: str | None = None


def build_command(name: str, text: str) -> Command | None:
    """The command ``/name text``, or None when ``name`` is not one of the bot's."""
    spec = COMMANDS.get(name)
    if spec is None:
        return None
    text = text.strip()
    if spec.argument is not None and not text and not spec.optional:
        return Command(name, usage=f"Usage: `/{name} <{spec.argument}>`")
    if name == "joke" and text:
        return Command(name, f"Tell me a joke about {text}.", spec.forced_tool)
    return Command(name, spec.prompt.format(text=text), spec.forced_tool)


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
