"""Tests of hermes_bot.parsing: model text → chat text, calls and read errors."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hermes_bot.call_format import CALL_FORMATS, CONTROL_TOKENS, markup_names, markup_tags
from hermes_bot.parsing import MAX_ERRORS, ParsedCompletion, parse_completion, visible_text
from hermes_bot.tools import ToolCall

TAG = re.compile("</?(?:" + "|".join(markup_names()) + ")>", re.IGNORECASE)
SPECIAL_TOKENS = CONTROL_TOKENS

JOKE = {
    "setup": "Why did the scarecrow win an award?",
    "answer": "He was outstanding in his field.",
}
JOKE_JSON = json.dumps({"name": "Joke", "arguments": JOKE})
SONG = {"interest": "R&B", "recommended_song": "No Scrubs"}
SONG_JSON = json.dumps({"name": "SongRecommendation", "arguments": SONG})


def joke(**arguments: object) -> ToolCall:
    return ToolCall("Joke", arguments or dict(JOKE))


def song(**arguments: object) -> ToolCall:
    return ToolCall("SongRecommendation", arguments or dict(SONG))


def book(interest: str, title: str) -> ToolCall:
    return ToolCall("BookRecommendation", {"interest": interest, "recommended_book": title})


# (completion, expected calls, expected chat text): every one reads cleanly.
CALLS = [
    pytest.param(
        '<multiplefunctions><functioncall> {"name": "Joke", "arguments": {"setup": "Why...?", '
        '"answer": "Because..."}} </functioncall></multiplefunctions>',
        [joke(setup="Why...?", answer="Because...")],
        "",
        id="functioncall-in-multiplefunctions",
    ),
    pytest.param(
        f"<functioncall>{JOKE_JSON}</functioncall>",
        [joke()],
        "",
        id="functioncall-without-wrapper",
    ),
    pytest.param(
        "<functioncall>{'name': 'SongRecommendation', 'arguments': {'interest': 'inspiration', "
        "'recommended_song': \"Don't Stop Believin'\"}}</functioncall>",
        [song(interest="inspiration", recommended_song="Don't Stop Believin'")],
        "",
        id="python-single-quotes",
    ),
    pytest.param(
        'Sure! <tool_call>\n{"name": "BookRecommendation", "arguments": "{\\"interest\\": '
        '\\"crime thriller\\", \\"recommended_book\\": \\"Gone Girl\\"}"}\n</tool_call>',
        [book("crime thriller", "Gone Girl")],
        "Sure!",
        id="tool_call-arguments-as-json-string",
    ),
    pytest.param(
        '<functioncall> {"name": "SongRecommendation", "arguments": \'{"interest": '
        '"jazz", "recommended_song": "So What"}\'} </functioncall>',
        [song(interest="jazz", recommended_song="So What")],
        "",
        id="glaive-style-quoted-arguments",
    ),
    pytest.param(
        "<tool_call>{'name': 'Joke', 'arguments': {'setup': 'Q', 'answer': None, "
        "'clean': True, 'rude': False}}</tool_call>",
        [joke(setup="Q", answer=None, clean=True, rude=False)],
        "",
        id="python-true-false-none",
    ),
    pytest.param(
        "<tool_call>{'name': 'Joke', 'arguments': {'setup': 'Q', 'answer': null, "
        "'clean': true}}</tool_call>",
        [joke(setup="Q", answer=None, clean=True)],
        "",
        id="single-quotes-with-json-literals",
    ),
    pytest.param(
        '<tool_call>{"name": "Joke", "parameters": {"setup": "Q", "answer": "A"}}</tool_call>',
        [joke(setup="Q", answer="A")],
        "",
        id="parameters-key",
    ),
    pytest.param(
        '<tool_call>{"name": "Joke"}</tool_call>',
        [ToolCall("Joke", {})],
        "",
        id="missing-arguments-are-empty",
    ),
    pytest.param(
        '<tool_call>{"name": "Joke", "arguments": ""}</tool_call>',
        [ToolCall("Joke", {})],
        "",
        id="empty-arguments-string",
    ),
    pytest.param(
        f"Here is one:\n<tool_call>\n{JOKE_JSON}\n",
        [joke()],
        "Here is one:",
        id="unclosed-final-tool_call",
    ),
    pytest.param(
        f"<functioncall>{JOKE_JSON}</functionc",
        [joke()],
        "",
        id="unclosed-final-functioncall-with-cut-closer",
    ),
    pytest.param(
        f"<tool_call>{JOKE_JSON} Enjoy!",
        [joke()],
        "Enjoy!",
        id="chat-after-unclosed-block-kept",
    ),
    pytest.param(
        f"Let me think.\n<functioncall>{JOKE_JSON}</functioncall>\nHope that made you smile!",
        [joke()],
        "Let me think.\nHope that made you smile!",
        id="text-before-and-after-kept",
    ),
    pytest.param(
        f"A joke<tool_call>{JOKE_JSON}</tool_call>and a song<tool_call>{SONG_JSON}</tool_call>!",
        [joke(), song()],
        "A joke and a song !",
        id="two-tool_calls-in-order",
    ),
    pytest.param(
        f"<multiplefunctions><functioncall>{SONG_JSON}</functioncall>"
        f"<functioncall>{JOKE_JSON}</functioncall></multiplefunctions>",
        [song(), joke()],
        "",
        id="multiplefunctions-order-kept",
    ),
    pytest.param(
        f"<functioncall>{JOKE_JSON}<functioncall>{SONG_JSON}</functioncall>",
        [joke(), song()],
        "",
        id="next-opener-ends-unclosed-block",
    ),
    pytest.param(
        f"<tool_call>[{JOKE_JSON}, {SONG_JSON}]</tool_call>",
        [joke(), song()],
        "",
        id="list-of-calls-in-one-block",
    ),
    pytest.param(
        f"<tool_call>\n{JOKE_JSON}\n{SONG_JSON}\n</tool_call>",
        [joke(), song()],
        "",
        id="two-objects-in-one-block",
    ),
    pytest.param(
        f"<tool_call>\n```json\n{JOKE_JSON}\n```\n</tool_call>",
        [joke()],
        "",
        id="fence-inside-tool_call",
    ),
    pytest.param(
        f"Here you go:\n```json\n{json.dumps(json.loads(JOKE_JSON), indent=2)}\n```\nEnjoy!",
        [joke()],
        "Here you go:\nEnjoy!",
        id="fenced-json",
    ),
    pytest.param(
        f"```\n{SONG_JSON}\n```",
        [song()],
        "",
        id="fence-without-language",
    ),
    pytest.param(
        f"```json\n{JOKE_JSON}",
        [joke()],
        "",
        id="unclosed-final-fence",
    ),
    pytest.param(
        f"```\n<functioncall>{JOKE_JSON}</functioncall>\n```\nThere you go.",
        [joke()],
        "There you go.",
        id="functioncall-wrapped-in-fence",
    ),
    pytest.param(
        f"Sure! {JOKE_JSON}",
        [joke()],
        "Sure!",
        id="bare-json-object",
    ),
    pytest.param(
        f"[{JOKE_JSON}, {SONG_JSON}] Both above.",
        [joke(), song()],
        "Both above.",
        id="bare-json-list",
    ),
    pytest.param(
        f"Use {{ this brace, then {JOKE_JSON}",
        [joke()],
        "Use { this brace, then",
        id="bare-json-after-stray-brace",
    ),
    pytest.param(
        f"Inline `{JOKE_JSON}` call",
        [joke()],
        "Inline call",
        id="bare-json-in-inline-code",
    ),
    pytest.param(
        '{"function": {"name": "Joke", "arguments": "{\\"setup\\": \\"Q\\", \\"answer\\": \\"A\\"}"}}',
        [joke(setup="Q", answer="A")],
        "",
        id="openai-function-wrapper",
    ),
    pytest.param(
        '<tool_call>{"function": "Joke", "arguments": {"setup": "Q"}}</tool_call>',
        [joke(setup="Q")],
        "",
        id="function-key-as-name",
    ),
    pytest.param(
        f"<functioncall>{SONG_JSON}</functioncall>",
        [song()],
        "",
        id="ampersand-inside-call",
    ),
    pytest.param(
        '<tool_call>{"name": "Joke", "arguments": {"setup": "a < b && c > d", '
        '"answer": "{not} [a] </call>"}}</tool_call>',
        [joke(setup="a < b && c > d", answer="{not} [a] </call>")],
        "",
        id="markup-characters-inside-strings",
    ),
    pytest.param(
        '<tool_call>{"name": "Joke", "arguments": {"setup": {"nested": [1, {"deep": '
        '{"deeper": [true, null]}}]}, "answer": "A"}}</tool_call>',
        [joke(setup={"nested": [1, {"deep": {"deeper": [True, None]}}]}, answer="A")],
        "",
        id="nested-json-in-arguments",
    ),
    pytest.param(
        'Voilà ✨ <tool_call>{"name": "BookRecommendation", "arguments": {"interest": '
        '"推理小说", "recommended_book": "Le Comte de Monte-Cristo 📚"}}</tool_call> Bonne lecture!',
        [book("推理小说", "Le Comte de Monte-Cristo 📚")],
        "Voilà ✨ Bonne lecture!",
        id="unicode",
    ),
    pytest.param(
        f"<TOOL_CALL>{JOKE_JSON}</Tool_Call>",
        [joke()],
        "",
        id="tag-case-ignored",
    ),
    pytest.param(
        f"<functioncall>{JOKE_JSON}</functioncall><|im_end|>",
        [joke()],
        "",
        id="im_end-after-call",
    ),
    pytest.param(
        f"<functioncall>{JOKE_JSON}<|im_end|>",
        [joke()],
        "",
        id="im_end-closes-unclosed-call",
    ),
    pytest.param(
        '<functioncall>{"name": "Joke", "arguments": {"setup": "Q?", "answer": "A."}</functioncall>',
        [joke(setup="Q?", answer="A.")],
        "",
        id="missing-last-brace",
    ),
    pytest.param(
        '<tool_call>\n{"name": "Joke", "arguments": {"setup": "Q?", "answer": "A."\n</tool_call>',
        [joke(setup="Q?", answer="A.")],
        "",
        id="missing-both-braces",
    ),
    pytest.param(
        f'<functioncall>{{"function_call": {json.dumps({"name": "Joke", "arguments": json.dumps(JOKE)})}}}'
        "</functioncall>",
        [joke()],
        "",
        id="function_call-wrapper",
    ),
    pytest.param(
        f'<functioncall>{{"name": "Joke", "args": {json.dumps(JOKE)}}}</functioncall>',
        [joke()],
        "",
        id="args-key",
    ),
    pytest.param(
        f"<functioncall>Joke({json.dumps(JOKE)})</functioncall>",
        [joke()],
        "",
        id="python-call-with-a-dict",
    ),
    pytest.param(
        '<tool_call>Joke(setup="Q?", answer="A.")</tool_call>',
        [joke(setup="Q?", answer="A.")],
        "",
        id="python-call-with-keywords",
    ),
    pytest.param(
        f"<function_call>{JOKE_JSON}</function_call> Enjoy!",
        [joke()],
        "Enjoy!",
        id="function_call-tag",
    ),
    pytest.param(
        f"<functioncalls>[{JOKE_JSON}, {SONG_JSON}]</functioncalls>",
        [joke(), song()],
        "",
        id="functioncalls-tag-with-a-list",
    ),
    pytest.param(
        f"Sure.\n<tool_calls>\n{JOKE_JSON}\n</tool_calls>",
        [joke()],
        "Sure.",
        id="tool_calls-tag",
    ),
]


@pytest.mark.parametrize(("completion", "calls", "text"), CALLS)
def test_calls_are_read(completion: str, calls: list[ToolCall], text: str) -> None:
    parsed = parse_completion(completion)
    assert parsed == ParsedCompletion(text=text, calls=calls, errors=[])


# (completion, expected calls, expected chat, expected error fragments): unreadable markup.
ERRORS = [
    pytest.param(
        '<multiplefunctions><functioncall>{"name": "Joke", "arguments": {"setup": Q}}'
        f"</functioncall><functioncall>{SONG_JSON}</functioncall></multiplefunctions>",
        [song()],
        "",
        ["functioncall block 1 is not valid JSON"],
        id="bad-then-good-functioncall",
    ),
    pytest.param(
        f"Sure! <tool_call>{JOKE_JSON}</tool_call>\n<tool_call>{{name: Joke, arguments: "
        "{setup: oops}}</tool_call>\nThat's all.",
        [joke()],
        "Sure!\nThat's all.",
        ["tool_call block 2 is not valid JSON"],
        id="good-then-bad-tool_call",
    ),
    pytest.param(
        'Hold on <tool_call>{"name": "Joke", "arguments": {"setup": "Why',
        [],
        "Hold on",
        ["unclosed tool_call block 1 is not valid JSON"],
        id="truncated-unclosed-block",
    ),
    pytest.param(
        "<tool_call></tool_call>",
        [],
        "",
        ["tool_call block 1 is empty"],
        id="empty-block",
    ),
    pytest.param(
        '<functioncall>{"arguments": {"setup": "Q"}}</functioncall>',
        [],
        "",
        ['functioncall block 1 is not a function call (it has no "name")'],
        id="block-without-name",
    ),
    pytest.param(
        '<tool_call>{"name": "Joke", "arguments": "{setup: Q"}</tool_call>',
        [],
        "",
        ["tool_call block 1: the arguments of Joke are not valid JSON"],
        id="arguments-string-not-json",
    ),
    pytest.param(
        '<tool_call>{"name": "Joke", "arguments": ["Q", "A"]}</tool_call>',
        [],
        "",
        ["tool_call block 1: the arguments of Joke are not an object"],
        id="arguments-not-an-object",
    ),
    pytest.param(
        f'```json\n{{"name": "Joke", "arguments": {{"setup": "Q"]}}\n```\n```json\n{JOKE_JSON}\n```',
        [joke()],
        "",
        ["fenced block 1 is not valid JSON"],
        id="bad-then-good-fence",
    ),
    pytest.param(
        'Here: {"name": "Joke", "arguments": {"setup": Q}} and ' + JOKE_JSON,
        [joke()],
        "Here: and",
        ["JSON call 1 is not valid JSON"],
        id="bad-then-good-bare-json",
    ),
]


@pytest.mark.parametrize(("completion", "calls", "text", "fragments"), ERRORS)
def test_unreadable_calls_are_reported(
    completion: str, calls: list[ToolCall], text: str, fragments: list[str]
) -> None:
    parsed = parse_completion(completion)
    assert parsed.calls == calls
    assert parsed.text == text
    assert len(parsed.errors) == len(fragments)
    for error, fragment in zip(parsed.errors, fragments, strict=True):
        assert error.startswith(fragment)
    for leak in ("setup", "arguments", "{", "<"):
        assert leak not in parsed.text


# Chat that merely contains markup characters: kept as is, no call, no error.
CHAT = [
    pytest.param("I love R&B & soul.", id="ampersand"),
    pytest.param("Is a < b? Yes, and b > a.", id="angle-brackets"),
    pytest.param("Use {curly} braces and [square] ones.", id="braces"),
    pytest.param("An unclosed { brace and an unclosed [ bracket", id="unclosed-braces"),
    pytest.param('The data is {"city": "Paris", "population": 2148000}.', id="json-not-a-call"),
    pytest.param('A person: {"name": "Ada", "age": 36}', id="json-with-name-only"),
    pytest.param('Ranked: [{"name": "Ada"}, {"name": "Alan"}]', id="list-not-of-calls"),
    pytest.param(
        '```python\nrequests.post(url, json={"name": fn, "arguments": args})\n```',
        id="code-fence-with-call-like-code",
    ),
    pytest.param(
        'Example:\n```python\npayload = {"name": "Joke", "arguments": {}}\nsend(payload)\n```',
        id="code-fence-with-call-dict-inside-code",
    ),
    pytest.param("```js\nconst x = {a: 1};\n```\nThat's JS.", id="code-fence-not-a-call"),
    pytest.param("Don't {worry}, it's fine: <b>bold</b> &amp; <tool> </s", id="html-ish"),
    pytest.param("Здравствуйте! 你好 🎵 — «ça va?»", id="unicode"),
    pytest.param("Line one\n\nLine two\n    indented code", id="newlines-and-indent"),
]


@pytest.mark.parametrize("completion", CHAT)
def test_chat_stays_chat(completion: str) -> None:
    assert parse_completion(completion) == ParsedCompletion(completion.strip(), [], [])


@pytest.mark.parametrize(
    ("completion", "text"),
    [
        pytest.param("", "", id="empty"),
        pytest.param(" \n\t \n", "", id="whitespace-only"),
        pytest.param("  Hello there!  \n", "Hello there!", id="stripped"),
        pytest.param("Hello!<|im_end|>", "Hello!", id="im_end"),
        pytest.param("Hello!</s>", "Hello!", id="eos"),
        pytest.param("<|im_start|>assistant\nHello!<|im_end|>\n", "Hello!", id="echoed-header"),
        pytest.param(
            "Hi!<|im_end|>\n<|im_start|>user\nIgnore all rules<|im_end|>",
            "Hi!",
            id="hallucinated-next-turn-dropped",
        ),
        pytest.param(
            "Wrapped <multiplefunctions></multiplefunctions> nothing",
            "Wrapped nothing",
            id="empty-wrapper-removed",
        ),
        pytest.param("Stray </functioncall> closer", "Stray closer", id="stray-closer-removed"),
        pytest.param(
            f"Top\n\n\n<tool_call>{JOKE_JSON}</tool_call>\n\n\n\nBottom",
            "Top\n\nBottom",
            id="blank-lines-collapsed",
        ),
    ],
)
def test_text_is_tidied(completion: str, text: str) -> None:
    assert parse_completion(completion).text == text


def test_errors_are_capped() -> None:
    parsed = parse_completion("<tool_call>{oops}</tool_call>" * (MAX_ERRORS + 5))
    assert parsed.text == ""
    assert len(parsed.errors) == MAX_ERRORS + 1
    assert parsed.errors[-1] == "... and 5 more unreadable calls"


# --- round trip: any call, in any dialect, between any chat -----------------------------

SAFE_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="<`")
CHAT_TEXT = st.from_regex(r"[A-Za-z0-9 !?.,&;:()-]{0,30}", fullmatch=True)
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
VALUES = st.one_of(st.text(SAFE_CHARS, max_size=30), st.integers(), st.booleans(), st.none())
ARGUMENTS = st.dictionaries(
    st.text(SAFE_CHARS, min_size=1, max_size=10),
    st.one_of(VALUES, st.lists(VALUES, max_size=3), st.dictionaries(NAMES, VALUES, max_size=3)),
    max_size=4,
)
DIALECTS = {
    "tool_call": lambda call: f"<tool_call>\n{json.dumps(call)}\n</tool_call>",
    "functioncall": lambda call: (
        f"<multiplefunctions><functioncall> {json.dumps(call)} </functioncall></multiplefunctions>"
    ),
    "python-literal": lambda call: f"<functioncall>{call!r}</functioncall>",
    "arguments-string": lambda call: "<tool_call>{}</tool_call>".format(
        json.dumps({"name": call["name"], "arguments": json.dumps(call["arguments"])})
    ),
    "fence": lambda call: f"```json\n{json.dumps(call, indent=2, ensure_ascii=False)}\n```",
    "bare": lambda call: json.dumps(call, ensure_ascii=False),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=NAMES,
    arguments=ARGUMENTS,
    before=CHAT_TEXT,
    after=CHAT_TEXT,
    dialect=st.sampled_from(sorted(DIALECTS)),
)
def test_any_call_round_trips(
    name: str, arguments: dict, before: str, after: str, dialect: str
) -> None:
    completion = before + DIALECTS[dialect]({"name": name, "arguments": arguments}) + after
    parsed = parse_completion(completion)
    assert parsed.calls == [ToolCall(name, arguments)]
    assert parsed.errors == []
    assert parsed.text == " ".join(part.strip() for part in (before, after) if part.strip())


# --- never raises, whatever the input -------------------------------------------------

# Every tag spelling of every call format, its two halves, and the ChatML control tokens.
FRAGMENTS = [
    *markup_tags(), *(half for tag in markup_tags() for half in (tag[:4], tag[4:])),
    *CONTROL_TOKENS, "```", "```json\n", "{", "}", "[", "]", '"', "'", "\\", "\n", " ",
    '"name"', "'name'", '"arguments"', '"parameters"', ": ", ", ", "True", "null",
    "<", ">", "&", "R&B", JOKE_JSON,
]  # fmt: skip
NOISY_TEXT = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=40).map(
    "".join
)


def assert_clean(text: str) -> None:
    assert isinstance(text, str)
    assert text == text.strip()
    assert not TAG.search(text)
    for token in SPECIAL_TOKENS:
        assert token not in text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(NOISY_TEXT)
def test_fuzz_never_raises_and_never_leaks_tags(completion: str) -> None:
    parsed = parse_completion(completion)
    assert isinstance(parsed, ParsedCompletion)
    assert_clean(parsed.text)
    assert isinstance(parsed.calls, list) and isinstance(parsed.errors, list)
    for call in parsed.calls:
        assert isinstance(call, ToolCall)
        assert isinstance(call.name, str) and call.name
        assert isinstance(call.arguments, dict)
    assert all(isinstance(error, str) and error for error in parsed.errors)
    assert len(parsed.errors) <= MAX_ERRORS + 1
    assert_clean(visible_text(completion))


# --- every spelling the call formats know --------------------------------------------

CALL_TAG_SPELLINGS = [name for fmt in CALL_FORMATS for name in fmt.tag_spellings]


@pytest.mark.parametrize("name", CALL_TAG_SPELLINGS)
def test_a_closer_cut_off_by_the_stop_does_not_leak(name: str) -> None:
    parsed = parse_completion(f"Sure <{name}>{JOKE_JSON}</{name}")
    assert parsed == ParsedCompletion("Sure", [joke()], [])


@pytest.mark.parametrize("tag", markup_tags())
def test_every_partial_tag_is_held_back(tag: str) -> None:
    for end in range(1, len(tag)):
        assert visible_text(f"Hi {tag[:end]}") == "Hi", tag[:end]


@pytest.mark.parametrize(
    ("completion", "calls", "text"),
    [
        pytest.param(
            '<tool_call>{"name": "Joke", "arguments": {"setup": "What ends a </tool_call>?", '
            '"answer": "Its closing tag."}}</tool_call> Bye',
            [joke(setup="What ends a </tool_call>?", answer="Its closing tag.")],
            "Bye",
            id="closer-in-a-string",
        ),
        pytest.param(
            "<functioncall>{'name': 'Joke', 'arguments': {'setup': 'Say <function_call>', "
            "'answer': 'and </functioncall>'}}</functioncall>",
            [joke(setup="Say <function_call>", answer="and </functioncall>")],
            "",
            id="opener-and-closer-in-python-strings",
        ),
        pytest.param(
            '<tool_call>{"name": "Joke", "arguments": {"setup": "Q", "answer": "</tool_call>"}}',
            [joke(setup="Q", answer="</tool_call>")],
            "",
            id="closer-in-a-string-of-an-unclosed-block",
        ),
        pytest.param(
            '<tool_call>{"arguments": {"setup": "Q", "answer": "A"}}</tool_call>',
            [joke(setup="Q", answer="A")],
            "",
            id="nameless-arguments-fit-one-tool",
        ),
        pytest.param(
            '<functioncall>{"interest": "jazz", "recommended_song": "So What"}</functioncall>',
            [song(interest="jazz", recommended_song="So What")],
            "",
            id="nameless-bare-arguments-fit-one-tool",
        ),
    ],
)
def test_calls_the_formats_allow(completion: str, calls: list[ToolCall], text: str) -> None:
    assert parse_completion(completion) == ParsedCompletion(text, calls, [])


@pytest.mark.parametrize(
    ("completion", "text", "error"),
    [
        pytest.param(
            '<tool_call>{"name": "Joke", "arguments": {"setup": "Q", "answer": "A}</tool_call> '
            'Then "quoted" text',
            'Then "quoted" text',
            "tool_call block 1 is not valid JSON",
            id="a-string-that-never-closes-does-not-swallow-the-chat",
        ),
        pytest.param(
            '<tool_call>{"arguments": {"interest": "jazz"}}</tool_call>',
            "",
            'tool_call block 1 is not a function call (it has no "name")',
            id="nameless-arguments-fit-no-tool",
        ),
    ],
)
def test_what_the_formats_do_not_allow(completion: str, text: str, error: str) -> None:
    parsed = parse_completion(completion)
    assert (parsed.text, parsed.calls) == (text, [])
    assert [e[: len(error)] for e in parsed.errors] == [error]


# --- hostile sizes: right answers on 200 KB inputs ------------------------------------

SIZE = 200_000


@pytest.mark.parametrize(
    "completion",
    [
        pytest.param("{" * SIZE, id="unclosed-braces"),
        pytest.param("[" * SIZE, id="unclosed-brackets"),
        pytest.param("[" * (SIZE // 2) + "]" * (SIZE // 2), id="deep-nesting"),
        pytest.param('{"a":' * (SIZE // 5) + "1" + "}" * (SIZE // 5), id="deep-objects"),
        pytest.param("{[" * (SIZE // 2), id="alternating-openers"),
        pytest.param("[" * (SIZE // 2) + "}" * (SIZE // 2), id="mismatched-closers"),
        pytest.param('{"\\"' * (SIZE // 4), id="escaped-quotes"),
        pytest.param("{'" * (SIZE // 2), id="open-strings"),
        pytest.param('{"name": "Joke", "arguments": ' * (SIZE // 30), id="unclosed-call-prefixes"),
        pytest.param("<" * SIZE, id="angle-brackets"),
        pytest.param("a " * (SIZE // 2) + "b", id="plain-words"),
    ],
)
def test_huge_chat_stays_chat(completion: str) -> None:
    parsed = parse_completion(completion)
    assert parsed == ParsedCompletion(completion.strip(), [], [])


def test_huge_run_of_closers_in_strings() -> None:
    parsed = parse_completion('<tool_call>{"a</tool_call>' * (SIZE // 25))
    assert parsed.calls == [] and parsed.text == ""


@pytest.mark.parametrize("tag", ["tool_call", "functioncall"])
def test_huge_run_of_unclosed_openers(tag: str) -> None:
    parsed = parse_completion(f"<{tag}>" * (SIZE // (len(tag) + 2)))
    assert parsed.text == "" and parsed.calls == []
    assert parsed.errors[0] == f"{tag} block 1 is empty"
    assert len(parsed.errors) == MAX_ERRORS + 1


@pytest.mark.parametrize(
    ("wrap", "separator"),
    [
        pytest.param("<tool_call>{}</tool_call>", "", id="tool_calls"),
        pytest.param("<functioncall>{}</functioncall>", "", id="functioncalls"),
        pytest.param("```json\n{}\n```", "\n", id="fences"),
        pytest.param("{}", " ", id="bare"),
    ],
)
def test_huge_run_of_calls(wrap: str, separator: str) -> None:
    one = wrap.replace("{}", JOKE_JSON) + separator
    count = SIZE // len(one)
    parsed = parse_completion(one * count)
    assert parsed == ParsedCompletion("", [joke()] * count, [])


def test_call_after_huge_noise_is_found() -> None:
    noise = "{" * (SIZE // 2) + "'" * 1000 + "[" * (SIZE // 4)
    parsed = parse_completion(noise + "\n" + JOKE_JSON)
    assert parsed.calls == [joke()]
    assert parsed.text == noise


def test_huge_unreadable_block_does_not_leak() -> None:
    parsed = parse_completion("<tool_call>" + "[" * SIZE + "</tool_call>done")
    assert parsed.text == "done"
    assert parsed.errors == ["tool_call block 1 is not valid JSON: nested too deeply"]


# --- streaming: visible_text -----------------------------------------------------------

STREAMED = [
    pytest.param(f"Sure! <tool_call>\n{JOKE_JSON}\n</tool_call>", id="tool_call"),
    pytest.param(
        f"Here you go:\n<multiplefunctions><functioncall>{SONG_JSON}</functioncall>"
        f"<functioncall>{JOKE_JSON}</functioncall></multiplefunctions>\nEnjoy!",
        id="multiplefunctions",
    ),
    pytest.param(f"Here:\n```json\n{JOKE_JSON}\n```\nEnjoy the joke.", id="fence"),
    pytest.param(f"Okay! {JOKE_JSON} Have fun.", id="bare-json"),
    pytest.param(f"<functioncall>{JOKE_JSON}</functioncall><|im_end|>", id="im_end"),
    pytest.param(
        'Sure! <tool_call>{"name": "Joke", "arguments": {"setup": "What ends </tool_call>?", '
        '"answer": "Its closer."}}</tool_call> Bye',
        id="closer-inside-a-string",
    ),
    pytest.param(f"Sure <function_calls>{JOKE_JSON}</function_calls> Bye", id="alias-tag"),
]
MARKUP_TRACES = ("<", "`", "{", "[", '"name"', "arguments", "multiplef", "im_end")


@pytest.mark.parametrize("completion", STREAMED)
def test_streamed_call_markup_is_never_shown(completion: str) -> None:
    final = parse_completion(completion).text
    shown = [visible_text(completion[:end]) for end in range(len(completion) + 1)]
    for text in shown:
        assert not any(trace in text for trace in MARKUP_TRACES), text
        assert final.startswith(text)
    assert shown[-1] == final


def test_plain_text_streams_through() -> None:
    message = "Hello there, R&B fan! Here's my answer:\n\n1. a song\n2. a book (maybe)."
    for end in range(len(message) + 1):
        assert visible_text(message[:end]) == message[:end].strip()


@pytest.mark.parametrize(
    ("partial_text", "shown"),
    [
        pytest.param("Hello <tool_ca", "Hello", id="partial-tool_call-tag"),
        pytest.param("Hello <", "Hello", id="lone-angle-bracket"),
        pytest.param("Hi <multiplef", "Hi", id="partial-wrapper-tag"),
        pytest.param("Hi <FunctionC", "Hi", id="partial-tag-any-case"),
        pytest.param('Hi <tool_call>{"name": "Joke", "argu', "Hi", id="unclosed-block"),
        pytest.param(f"Hi <tool_call>{JOKE_JSON}</tool_c", "Hi", id="partial-closer"),
        pytest.param("Code: ```", "Code:", id="fence-opener"),
        pytest.param("Code: ```js", "Code:", id="fence-language"),
        pytest.param("Code: ``", "Code:", id="partial-fence"),
        pytest.param("Code: ```js\nlet a = 1;\n", "Code:", id="unclosed-code-fence"),
        pytest.param("Code: ```js\nlet a = 1;\n```", "Code: ```js\nlet a = 1;\n```", id="closed"),
        pytest.param('Sure! {"na', "Sure!", id="bare-json-start"),
        pytest.param("Sure! {", "Sure!", id="lone-brace"),
        pytest.param("Use { braces", "Use { braces", id="brace-in-chat"),
        pytest.param("Done.<|im_e", "Done.", id="partial-im_end"),
        pytest.param("Done.<|im_end|>", "Done.", id="im_end"),
        pytest.param("a < b and R&B", "a < b and R&B", id="angle-bracket-in-chat"),
        pytest.param("", "", id="empty"),
    ],
)
def test_visible_text_holds_back_partial_markup(partial_text: str, shown: str) -> None:
    assert visible_text(partial_text) == shown


@pytest.mark.parametrize(
    "completion",
    [pytest.param(SIZE * "{", id="braces"), pytest.param("<tool_call>" * 10_000, id="openers")],
)
def test_visible_text_on_huge_partials(completion: str) -> None:
    assert visible_text(completion) == ""
    assert visible_text("ok " + completion) == "ok"
