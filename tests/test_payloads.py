"""Bracket scanning and payload decoding, the parser's low-level readers."""

from __future__ import annotations

import pytest

from hermes_bot.payloads import (
    decode_payload,
    decode_python_call,
    scan_brackets,
    split_leading_value,
)


@pytest.mark.parametrize(
    ("text", "spans", "unclosed"),
    [
        pytest.param('say {"a": 1} and [2]', [(4, 12), (17, 20)], [], id="two-values"),
        pytest.param('{"a": "}"}', [(0, 10)], [], id="brace-inside-string"),
        pytest.param("{'a': '}'}", [(0, 10)], [], id="brace-inside-single-quotes"),
        pytest.param("it's {x} isn't", [(5, 8)], [], id="apostrophes-in-chat"),
        pytest.param('{"a": [1, {"b": 2}]}', [(0, 20)], [], id="nested-outermost-only"),
        pytest.param('{"a": {', [], [0, 6], id="unclosed"),
        pytest.param("]}{[", [], [2, 3], id="closers-before-openers"),
    ],
)
def test_scan_brackets(text: str, spans: list, unclosed: list) -> None:
    assert scan_brackets(text) == (spans, unclosed)


@pytest.mark.parametrize(
    ("payload", "value"),
    [
        pytest.param('{"a": true, "b": null}', {"a": True, "b": None}, id="json"),
        pytest.param("{'a': True, 'b': None}", {"a": True, "b": None}, id="python-literal"),
        pytest.param("{'a': true, 'b': \"it's\"}", {"a": True, "b": "it's"}, id="mixed-quotes"),
        pytest.param("{'a': 'b',}", {"a": "b"}, id="trailing-comma"),
    ],
)
def test_decode_payload_reads_json_and_python_literals(payload: str, value: object) -> None:
    assert decode_payload(payload) == (value, None)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("__import__('os').system('echo hacked')", id="code-is-never-run"),
        pytest.param("{name: Joke}", id="bare-words"),
        pytest.param("[" * 100_000, id="deep-nesting"),
    ],
)
def test_decode_payload_reports_what_it_cannot_read(payload: str) -> None:
    value, error = decode_payload(payload)
    assert value is None and error


def test_split_leading_value() -> None:
    assert split_leading_value(' {"a": 1} and more') == ('{"a": 1}', " and more")
    assert split_leading_value("no value here") == ("no value here", "")


@pytest.mark.parametrize(
    ("payload", "call"),
    [
        pytest.param(
            'Joke({"setup": "a"})', {"name": "Joke", "arguments": {"setup": "a"}}, id="dict"
        ),
        pytest.param(
            "Joke(setup='a')", {"name": "Joke", "arguments": {"setup": "a"}}, id="keywords"
        ),
        pytest.param("Joke()", {"name": "Joke", "arguments": {}}, id="no-arguments"),
        pytest.param("__import__('os').system('x')", None, id="not-a-plain-name"),
        pytest.param("Joke(open('f'))", None, id="argument-is-code"),
        pytest.param("Joke(1, 2)", None, id="positional-values"),
        pytest.param("just text", None, id="not-a-call"),
    ],
)
def test_decode_python_call(payload: str, call: dict | None) -> None:
    decoded = decode_python_call(payload)
    assert decoded == call
