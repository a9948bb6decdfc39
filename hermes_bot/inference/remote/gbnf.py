"""GBNF grammars for the call markup, for engines that take a grammar (llama.cpp, vLLM, SGLang).

They mirror what ``hermes_bot.prompts.format_calls`` writes and what the
in-process Lark grammars force: compact JSON, ``"name"`` first and
``"arguments"`` second, string arguments 1 to ``maxLength`` characters long
with only the escapes ``\\n \\t \\" \\\\``. The tools' arguments are flat
objects of strings; any other schema is refused rather than guessed at.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from hermes_bot.backend import ConstraintMode, Dialect
from hermes_bot.call_format import call_format, markup_names
from hermes_bot.tools import Tool, parameters_schema

# A Unicode scalar value but a quote, a backslash or a control character (listed, not
# negated: a negated class also admits code points past U+10FFFF); or one of four escapes.
# The first character of a string is visible, so no argument is blank.
_CHAR_RULES = (
    'char ::= [\\x20-\\x21\\x23-\\x5B\\x5D-\\uD7FF\\uE000-\\U0010FFFF] | "\\\\" ["\\\\nt]',
    "first ::= [\\x21\\x23-\\x5B\\x5D-\\x7E\\xA1-\\uD7FF\\uE000-\\U0010FFFF]",
)
_MARK = "\x00"


def _text_rules() -> tuple[str, ...]:
    """Chat text (auto mode): starts visible; a "<" is never followed by what could start
    a call tag (a "/" or the first letter of any tag spelling)."""
    initials = "".join(
        sorted({c for name in markup_names() for c in (name[0].lower(), name[0].upper())})
    )
    return (
        "text ::= [ \\t\\n]* (visible | lt) (plain | lt)*",
        "visible ::= [^<\\x00-\\x20]",
        "plain ::= [^<]",
        f'lt ::= "<" [^{initials}/<]',
    )


def call_tags(dialect: Dialect) -> tuple[str, str, str]:
    """The markup before the first call, after the last, and between two, as written."""
    written = call_format(dialect).write([_MARK, _MARK])
    opening, between, closing = written.split(_MARK)
    return opening, closing, between


def _literal(text: str) -> str:
    return json.dumps(text)


def _rule_name(tool: type[Tool]) -> str:
    return "call-" + "".join(c if c.isalnum() else "-" for c in tool.__name__.lower())


def _payload_rule(tool: type[Tool], lengths: set[int]) -> str:
    schema = parameters_schema(tool)
    parts = [_literal(f'{{"name":{json.dumps(tool.__name__)},"arguments":{{')]
    for index, (name, prop) in enumerate(schema.get("properties", {}).items()):
        if prop.get("type") != "string" or name not in schema.get("required", []):
            raise ValueError(f"{tool.__name__}.{name}: only required string arguments have a GBNF")
        limit = int(prop.get("maxLength", 1000))
        lengths.add(limit)
        separator = "," if index else ""
        parts.append(_literal(f"{separator}{json.dumps(name)}:"))
        parts.append(f"str-{limit}")
    parts.append(_literal("}}"))
    return f"{_rule_name(tool)} ::= " + " ".join(parts)


def payload_rules(tools: Sequence[type[Tool]]) -> list[str]:
    """Rules defining ``payload``: one ``{"name":…,"arguments":{…}}`` of any of ``tools``."""
    lengths: set[int] = set()
    rules = [_payload_rule(tool, lengths) for tool in tools]
    rules.insert(0, "payload ::= " + " | ".join(_rule_name(tool) for tool in tools))
    rules.extend(f'str-{n} ::= "\\"" first char{{0,{n - 1}}} "\\""' for n in sorted(lengths))
    rules.extend(_CHAR_RULES)
    return rules


def gbnf(mode: ConstraintMode, dialect: Dialect, tools: Sequence[type[Tool]]) -> str:
    """The grammar for ``mode``: ``forced`` is one payload (the opening tag is in the prompt
    already); ``auto`` is chat text or complete calls, tags included."""
    if mode == "forced":
        return "\n".join(["root ::= payload", *payload_rules(tools)])
    if mode != "auto":
        raise ValueError(f"no grammar for constraint mode {mode!r}")
    opening, closing, between = call_tags(dialect)
    calls = f"{_literal(opening)} payload ({_literal(between)} payload)* {_literal(closing)}"
    return "\n".join([f"root ::= text | {calls}", *_text_rules(), *payload_rules(tools)])
