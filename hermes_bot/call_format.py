"""How calls are written in each prompt dialect: one :class:`CallFormat` per dialect.

Everything that writes, reads, holds back or constrains call markup derives it
from here: the prompt writer (``prompts``), the parser's tag patterns and
streaming hold-back (``parsing``), the grammar's forbidden-in-text strings and
the stop tokens (``inference``). A format owns its canonical tags, the alias
spellings models use instead (which the parser accepts and auto-mode text may
not contain), and how several calls are joined.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from hermes_bot.backend import Dialect

# ChatML (OpenHermes-2.5 and later); read their ids from the tokenizer, never hard-code them.
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
# Strings that end or open a turn: generation stops at them and they never reach a user.
STOP_TOKENS = (IM_END, IM_START)
# Every control string a completion may echo: stripped from chat, held back while streaming.
CONTROL_TOKENS = (IM_START, IM_END, "<|endoftext|>", "</s>")
CHATML_ROLES = ("assistant", "user", "system")

# The keys a call's name and arguments arrive under, canonical first. A JSON object outside
# call tags is read as a call only with a name key and one of CALL_ARGUMENT_KEYS.
NAME_KEYS = ("name", "function")
CALL_ARGUMENT_KEYS = ("arguments", "parameters")
ARGUMENT_KEYS = (*CALL_ARGUMENT_KEYS, "args")


@dataclass(frozen=True)
class CallFormat:
    """The call markup of one dialect.

    ``tag`` wraps each call, ``wrapper`` (if any) wraps all of them; ``padding``
    sits inside the tag around the JSON payload and ``separator`` between calls.
    """

    dialect: Dialect
    tag: str
    tag_aliases: tuple[str, ...] = ()
    wrapper: str | None = None
    wrapper_aliases: tuple[str, ...] = ()
    padding: str = ""
    separator: str = ""

    @property
    def open(self) -> str:
        """The canonical opening tag, e.g. ``<tool_call>``."""
        return f"<{self.tag}>"

    @property
    def close(self) -> str:
        """The canonical closing tag, e.g. ``</tool_call>``."""
        return f"</{self.tag}>"

    @property
    def tag_spellings(self) -> tuple[str, ...]:
        """Every name of the call tag the parser reads, canonical first."""
        return (self.tag, *self.tag_aliases)

    @property
    def wrapper_spellings(self) -> tuple[str, ...]:
        """Every name of the wrapper tag, canonical first (none when there is no wrapper)."""
        return (self.wrapper, *self.wrapper_aliases) if self.wrapper else ()

    def tag_pattern(self) -> re.Pattern[str]:
        """Any opening or closing call tag of this format, any case; group 1 is ``/`` or empty."""
        return re.compile(rf"<(/?){_alternation(self.tag_spellings)}>", re.IGNORECASE)

    def is_closer_start(self, text: str) -> bool:
        """True when ``text`` is empty or a start of a closing tag (say, cut off by a stop)."""
        text = text.lower()
        return any(f"</{name}>".startswith(text) for name in self.tag_spellings)

    def write(self, payloads: Sequence[str]) -> str:
        """``payloads`` (JSON texts) as this format's call markup, as the model is asked to."""
        calls = self.separator.join(
            f"{self.open}{self.padding}{payload}{self.padding}{self.close}" for payload in payloads
        )
        return f"<{self.wrapper}>{calls}</{self.wrapper}>" if self.wrapper else calls


FUNCTIONCALL = CallFormat(
    dialect="functioncall",
    tag="functioncall",
    tag_aliases=("function_call", "functioncalls", "function_calls"),
    wrapper="multiplefunctions",
    wrapper_aliases=("multiple_functions",),
)
TOOL_CALL = CallFormat(
    dialect="tool_call",
    tag="tool_call",
    tag_aliases=("toolcall", "tool_calls", "toolcalls"),
    padding="\n",
    separator="\n",
)
# In the order the parser reads them.
CALL_FORMATS: tuple[CallFormat, ...] = (TOOL_CALL, FUNCTIONCALL)


def call_format(dialect: Dialect) -> CallFormat:
    """The format of ``dialect``; ValueError for an unknown one."""
    for fmt in CALL_FORMATS:
        if fmt.dialect == dialect:
            return fmt
    raise ValueError(f"unknown dialect {dialect!r}")


def markup_names() -> tuple[str, ...]:
    """Every tag name of every format: call tags and wrappers, canonical and aliases."""
    return tuple(
        name for fmt in CALL_FORMATS for name in (*fmt.tag_spellings, *fmt.wrapper_spellings)
    )


def markup_tags() -> tuple[str, ...]:
    """Every opening and closing tag of every format, e.g. ``<tool_calls>``, ``</tool_calls>``."""
    return tuple(f"<{end}{name}>" for name in markup_names() for end in ("", "/"))


def markup_pattern() -> re.Pattern[str]:
    """Any opening or closing tag of any format, any case."""
    return re.compile(rf"</?{_alternation(markup_names())}>", re.IGNORECASE)


def control_pattern() -> re.Pattern[str]:
    """Any ChatML control string (an echoed ``<|im_start|>`` with its role)."""
    roles = "|".join(CHATML_ROLES)
    return re.compile(
        "|".join(
            re.escape(token) + (f"(?:{roles})?" if token == IM_START else "")
            for token in CONTROL_TOKENS
        )
    )


def _alternation(names: Sequence[str]) -> str:
    return "(?:" + "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True)) + ")"
