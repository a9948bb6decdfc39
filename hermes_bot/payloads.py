"""Bracket scanning and payload decoding for the parser: single pass, never eval.

``scan_brackets`` finds balanced ``{…}``/``[…]`` spans in linear time,
``ValueScanner`` finds the quoted strings of one value as far as asked;
``decode_payload`` reads a payload as JSON, then as a Python literal.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from typing import Any

_LITERAL_LIMIT = 20_000  # ast.literal_eval is slower and recursive: bound its input
_SCAN = re.compile(r"""[{}\[\]"']""")
_STRING = {
    '"': re.compile(r'"(?:[^"\\\n]|\\.)*+"'),
    "'": re.compile(r"'(?:[^'\\\n]|\\.)*+'"),
}
_SPACES = re.compile(r"\s*")
_PYTHON_CALL = re.compile(r"\s*[A-Za-z_]\w*\s*\(")
_JSON_WORDS = re.compile(r"\b(?:true|false|null)\b")
_PY_WORDS = {"true": "True", "false": "False", "null": "None"}


def scan_brackets(text: str) -> tuple[list[tuple[int, int]], list[int]]:
    """One pass: the outermost balanced {…}/[…] spans, and the openers never closed.

    Quotes start strings only inside brackets (apostrophes in chat are not
    strings), and a string never spans a line break.
    """
    pairs: list[tuple[int, int]] = []
    stack: list[tuple[str, int]] = []
    open_count = {"{": 0, "[": 0}
    no_string_before = {'"': -1, "'": -1}  # no closing quote of this kind up to here
    match = _SCAN.search(text)
    while match:
        char, pos = match.group(), match.start()
        resume = pos + 1
        if char in "\"'":
            if stack and pos > no_string_before[char]:
                string = _STRING[char].match(text, pos)
                if string:
                    resume = string.end()
                else:
                    line_end = text.find("\n", pos)
                    no_string_before[char] = len(text) if line_end < 0 else line_end
        elif char in "{[":
            stack.append((char, pos))
            open_count[char] += 1
        else:
            wanted = "{" if char == "}" else "["
            if open_count[wanted]:
                while True:  # pop through mismatched openers: amortized O(1)
                    opened, start = stack.pop()
                    open_count[opened] -= 1
                    if opened == wanted:
                        break
                pairs.append((start, pos + 1))
        match = _SCAN.search(text, resume)
    outermost: list[tuple[int, int]] = []
    for start, end in sorted(pairs):
        if not outermost or start >= outermost[-1][1]:
            outermost.append((start, end))
    return outermost, [pos for _, pos in stack]


class ValueScanner:
    """Walks the bracketed value that starts at ``start`` (after spaces), only as far as asked.

    Same rules as :func:`scan_brackets`: quotes start strings only inside
    brackets and a string never spans a line break. ``end`` is set once the
    value has closed.
    """

    def __init__(self, text: str, start: int) -> None:
        self._text = text
        self._pos = _SPACES.match(text, start).end()
        self._active = text[self._pos : self._pos + 1] in ("{", "[")
        self._depth = 0
        self._next: re.Match[str] | None = None
        self._no_string_before = {'"': -1, "'": -1}
        self.end: int | None = None

    def in_string(self, pos: int) -> bool:
        """True when ``pos`` lies inside one of the value's quoted strings."""
        while self._active:
            match = self._next or _SCAN.search(self._text, self._pos)
            if match is None:
                self._active = False
                break
            if match.start() >= pos:
                self._next = match
                return False
            self._next = None
            char, at = match.group(), match.start()
            self._pos = at + 1
            if char in "\"'":
                if at > self._no_string_before[char]:
                    string = _STRING[char].match(self._text, at)
                    if string:
                        self._pos = string.end()
                        if self._pos > pos:
                            return True
                    else:
                        line_end = self._text.find("\n", at)
                        self._no_string_before[char] = len(self._text) if line_end < 0 else line_end
            elif char in "{[":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 0:
                    self.end, self._active = at + 1, False
        return False


def split_leading_value(content: str) -> tuple[str, str]:
    """For an unclosed block: its leading balanced JSON value, and the chat after it."""
    stripped = content.lstrip()
    if stripped[:1] in ("{", "["):
        spans = scan_brackets(stripped)[0]
        if spans and spans[0][0] == 0:
            return stripped[: spans[0][1]], stripped[spans[0][1] :]
    return content, ""


def decode_payload(payload: str) -> tuple[Any, str | None]:
    """The value of a JSON or Python-literal payload, or (None, the JSON error)."""
    try:
        return json.loads(payload), None
    except (ValueError, RecursionError) as error:
        json_error = str(error) if isinstance(error, ValueError) else "nested too deeply"
    if len(payload) <= _LITERAL_LIMIT:
        try:
            return ast.literal_eval(payload), None
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            pass
        if _JSON_WORDS.search(payload):  # Python quotes mixed with JSON true/false/null
            try:
                return ast.literal_eval(_python_words(payload)), None
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
                pass
    return None, json_error


def _python_words(payload: str) -> str:
    """``payload`` with the bare names true/false/null spelled the Python way."""
    tokens = tokenize.generate_tokens(io.StringIO(payload).readline)
    try:
        return tokenize.untokenize(
            (token.type, _PY_WORDS.get(token.string, token.string))
            if token.type == tokenize.NAME
            else token[:2]
            for token in tokens
        )
    except tokenize.TokenError as error:
        raise ValueError(str(error)) from None


def decode_python_call(payload: str) -> dict[str, Any] | None:
    """``Name({...})`` or ``Name(key=value, ...)`` as a call dict, read with ast (never run)."""
    if len(payload) > _LITERAL_LIMIT or not _PYTHON_CALL.match(payload):
        return None
    try:
        node = ast.parse(payload.strip(), mode="eval").body
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            return None
        if node.args and (len(node.args) > 1 or node.keywords):
            return None
        if node.args:
            arguments = ast.literal_eval(node.args[0])
        else:
            arguments = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return None
    if not isinstance(arguments, dict):
        return None
    return {"name": node.func.id, "arguments": arguments}
