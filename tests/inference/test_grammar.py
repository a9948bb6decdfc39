"""Constrained decoding: what a random-weight model can and cannot write under each constraint."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import llguidance.hf
import pytest
import torch
from pydantic import Field
from transformers import DynamicCache

from hermes_bot.backend import Constraint, GenerationParams, GenerationRequest
from hermes_bot.call_format import markup_tags
from hermes_bot.errors import GrammarError
from hermes_bot.inference import grammar
from hermes_bot.inference.grammar import GrammarCompiler, RowMatcher
from hermes_bot.parsing import parse_completion
from hermes_bot.prompts import format_calls
from hermes_bot.tools import TOOLS, Tool, ToolCall, validate_call
from tests.inference.conftest import chat

DIALECTS = ("functioncall", "tool_call")
CALL_TAGS = markup_tags()  # every spelling the parser reads, opening and closing
EOS = 32000  # <|im_end|> in the tiny model's tokenizer (vocabulary 32002)
JOKE = ToolCall(
    "Joke", {"setup": "Why did the chicken cross the road?", "answer": "To get across."}
)


@pytest.fixture(scope="module")
def compiler(grammar_compiler: GrammarCompiler) -> GrammarCompiler:
    return grammar_compiler


@pytest.fixture(scope="module")
def tokenize(tiny_tokenizer: Any) -> Callable[[str], list[int]]:
    """Token ids of ``text`` as a continuation (no SentencePiece leading space)."""
    return llguidance.hf.from_tokenizer(tiny_tokenizer).tokenize_str


def allowed(compiler: GrammarCompiler, matcher: RowMatcher, width: int = 32002) -> torch.Tensor:
    """The bool mask of the tokens ``matcher`` allows next."""
    logits = torch.zeros(1, width)
    compiler.fill_masks(logits, [matcher])
    return logits[0] > float("-inf")


def produce(compiler: GrammarCompiler, matcher: RowMatcher, ids: Sequence[int]) -> bool:
    """Feed ``ids`` through the masks; False as soon as one is not allowed."""
    for token in ids:
        if not allowed(compiler, matcher)[token]:
            return False
        matcher.consume(token)
    return True


def calls_text(dialect: str, payloads: Sequence[str]) -> str:
    if dialect == "tool_call":
        return "\n".join(f"<tool_call>\n{p}\n</tool_call>" for p in payloads)
    return (
        "<multiplefunctions>"
        + "".join(f"<functioncall>{p}</functioncall>" for p in payloads)
        + "</multiplefunctions>"
    )


# -- the grammar itself, fed known text ----------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_forced_accepts_the_prompt_markup_then_only_eos(compiler, tokenize, dialect):
    matcher = compiler.matcher(Constraint("forced", dialect, ("Joke",)))
    ids = tokenize(format_calls([JOKE], dialect))
    assert produce(compiler, matcher, ids[:-1])
    assert not allowed(compiler, matcher)[EOS], "EOS allowed before the call is complete"
    assert not matcher.is_finished()
    matcher.consume(ids[-1])
    assert matcher.is_finished()
    assert allowed(compiler, matcher).nonzero().flatten().tolist() == [EOS]


GOOD_ARGS = '{"setup":"Knock knock","answer":"Who\'s there?"}'
FORCED_REJECTS = {
    "free whitespace": '{"name": "Joke","arguments":' + GOOD_ARGS + "}",
    "arguments before name": '{"arguments":' + GOOD_ARGS + ',"name":"Joke"}',
    "extra argument": '{"name":"Joke","arguments":{"setup":"a","answer":"b","x":"c"}}',
    "missing argument": '{"name":"Joke","arguments":{"setup":"a"}}',
    "empty string": '{"name":"Joke","arguments":{"setup":"","answer":"b"}}',
    "too long": '{"name":"Joke","arguments":{"setup":"' + "a" * 301 + '","answer":"b"}}',
    "unicode escape": '{"name":"Joke","arguments":{"setup":"\\u0007","answer":"b"}}',
    "other tool": '{"name":"BookRecommendation","arguments":{"interest":"a","recommended_book":"b"}}',
    "unknown tool": '{"name":"Weather","arguments":{"city":"Paris"}}',
}


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("case", sorted(FORCED_REJECTS))
def test_forced_rejects_what_the_prompt_does_not_ask_for(compiler, tokenize, dialect, case):
    matcher = compiler.matcher(Constraint("forced", dialect, ("Joke",)))
    assert not produce(compiler, matcher, tokenize(calls_text(dialect, [FORCED_REJECTS[case]])))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_forced_strings_may_fill_their_max_length(compiler, tokenize, dialect):
    longest = ToolCall("Joke", {"setup": "a" * 300, "answer": "b" * 1000})
    matcher = compiler.matcher(Constraint("forced", dialect, ("Joke",)))
    assert produce(compiler, matcher, tokenize(format_calls([longest], dialect)))
    assert matcher.is_finished()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_forced_allows_exactly_one_call_and_no_text(compiler, tokenize, dialect):
    payload = format_calls([JOKE], dialect)
    for text in (
        "Sure! " + payload,
        format_calls([JOKE, JOKE], dialect),
        calls_text(dialect, []) or payload.replace("\n", ""),
    ):
        matcher = compiler.matcher(Constraint("forced", dialect, ("Joke",)))
        assert not produce(compiler, matcher, tokenize(text)), text


@pytest.mark.parametrize("dialect", DIALECTS)
def test_auto_allows_plain_text_ending_any_time(compiler, tokenize, dialect):
    matcher = compiler.matcher(Constraint("auto", dialect))
    assert not allowed(compiler, matcher)[EOS], "an empty answer must not be possible"
    assert produce(compiler, matcher, tokenize("Sure, 2 < 3 and {braces} are fine."))
    assert allowed(compiler, matcher)[EOS]
    assert not matcher.is_finished()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_auto_allows_several_calls_then_eos(compiler, tokenize, dialect):
    matcher = compiler.matcher(Constraint("auto", dialect))
    song = ToolCall("SongRecommendation", {"interest": "jazz", "recommended_song": "So What"})
    ids = tokenize(format_calls([JOKE, song], dialect))
    assert produce(compiler, matcher, ids[:-1])
    assert not allowed(compiler, matcher)[EOS]
    matcher.consume(ids[-1])
    assert allowed(compiler, matcher)[EOS]


def test_a_token_outside_the_mask_stops_the_row(compiler, tokenize):
    matcher = compiler.matcher(Constraint("forced", "functioncall", ("Joke",)))
    matcher.consume(tokenize("Hello")[0])
    assert matcher.is_finished()
    assert allowed(compiler, matcher).nonzero().flatten().tolist() == [EOS]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("tag", [*CALL_TAGS, "<TOOL_CALL>", "</Function_Call>"])
def test_auto_text_cannot_contain_a_call_tag(compiler, tokenize, dialect, tag):
    matcher = compiler.matcher(Constraint("auto", dialect))
    assert not produce(compiler, matcher, tokenize(f"Here you go: {tag} done"))


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "text",
    [
        'Sure! <function_call>{"name": "Joke", "arguments": {"setup": "", "extra": 1}}'
        "</function_call>",
        'Sure! ```json\n{"name": "Joke", "arguments": {"setup": ""}}\n```',
        "Sure! {'function': 'Joke', 'parameters': {}}",
    ],
)
def test_auto_text_cannot_hold_a_call_the_parser_would_read(compiler, tokenize, dialect, text):
    assert parse_completion(text).calls or parse_completion(text).errors
    matcher = compiler.matcher(Constraint("auto", dialect))
    assert not produce(compiler, matcher, tokenize(text))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_auto_text_may_hold_markup_characters(compiler, tokenize, dialect):
    matcher = compiler.matcher(Constraint("auto", dialect))
    assert produce(compiler, matcher, tokenize('R&B <b>is</b> {"name": "Ada"} & a < b.'))


def test_off_means_no_matcher(compiler):
    assert compiler.matcher(Constraint("off", "tool_call", ("Joke",))) is None


def test_masks_touch_only_constrained_rows_and_padded_columns(compiler):
    constraint = Constraint("forced", "functioncall")
    rows = [None, compiler.matcher(constraint), None]
    logits = torch.randn(3, 32064)  # the model pads its vocabulary past the tokenizer's 32002
    before = logits.clone()
    compiler.fill_masks(logits, rows)
    assert torch.equal(logits[0], before[0]) and torch.equal(logits[2], before[2])
    expected = allowed(compiler, compiler.matcher(constraint))
    assert torch.equal(logits[1, :32002] > float("-inf"), expected)
    assert torch.isinf(logits[1, 32002:]).all()


def test_tags_that_are_special_tokens_are_written_as_those_tokens(tiny_tokenizer):
    tokenizer = type(tiny_tokenizer).from_pretrained(tiny_tokenizer.name_or_path)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<tool_call>", "</tool_call>"]})
    tag = tokenizer.convert_tokens_to_ids("<tool_call>")
    special = GrammarCompiler(tokenizer)
    matcher = special.matcher(Constraint("forced", "tool_call", ("Joke",)))
    assert allowed(special, matcher, len(tokenizer)).nonzero().flatten().tolist() == [tag]


def test_the_mask_thread_ends_with_its_compiler_and_rows(tiny_tokenizer):
    def mask_threads() -> set[threading.Thread]:
        return {thread for thread in threading.enumerate() if thread.name == "grammar-masks"}

    gc.collect()
    before = mask_threads()
    compiler = GrammarCompiler(tiny_tokenizer)
    row = compiler.matcher(Constraint("auto", "tool_call"))
    [own] = mask_threads() - before  # other compilers' threads may end meanwhile
    del compiler
    assert row.mask().any()  # a row outliving its compiler still gets masks
    assert own.is_alive()
    del row
    gc.collect()
    own.join(timeout=10)
    assert not own.is_alive()


# -- compile errors surface at start-up ----------------------------------------------------


class CardNumber(Tool):
    """A tool whose schema uses a string format llguidance does not implement."""

    number: str = Field(json_schema_extra={"format": "credit-card"})


def test_unknown_tool_fails_the_start_up_check(compiler):
    with pytest.raises(GrammarError, match="Weather"):
        compiler.check(
            [Constraint("auto", "functioncall"), Constraint("forced", "tool_call", ("Weather",))]
        )


def test_unsupported_schema_fails_the_start_up_check(compiler, monkeypatch):
    monkeypatch.setattr(grammar, "find_tool", lambda name: CardNumber)
    constraint = Constraint("forced", "functioncall", ("CardNumber",))
    with pytest.raises(GrammarError, match="credit-card"):
        compiler.check([constraint])
    with pytest.raises(GrammarError):
        compiler.matcher(constraint)


def test_unknown_dialect_fails_the_start_up_check(compiler):
    with pytest.raises(GrammarError, match="dialect"):
        compiler.check([Constraint("forced", "xml")])  # type: ignore[arg-type]


def test_checked_grammars_are_not_compiled_again(tiny_tokenizer, monkeypatch):
    fresh = GrammarCompiler(tiny_tokenizer)
    constraints = [Constraint("forced", d, (t,)) for d in DIALECTS for t in TOOLS]
    fresh.check(constraints)

    def no_compiling(*args: object) -> str:
        raise AssertionError("compiled mid-request")

    monkeypatch.setattr(grammar, "lark_source", no_compiling)
    for constraint in constraints:
        lower = Constraint("forced", constraint.dialect, (constraint.tools[0].lower(),))
        assert fresh.matcher(lower) is not None


# -- sampling a random model at temperature 1.0 --------------------------------------------


@dataclass
class Row:
    constraint: Constraint
    limit: int
    prefix: str = ""


@dataclass
class Sampled:
    text: str
    finished: bool  # the grammar ended the row (or the model chose EOS)
    prefix_allowed: bool


def sample(model, tokenizer, compiler, tokenize, rows: Sequence[Row], seed: int = 0):
    """A plain batched sampling loop; returns per-row results and whether off rows were touched.

    Rows leave the batch (and its cache) as they finish.
    """
    generator = torch.Generator().manual_seed(seed)
    prompt = tokenizer(chat("Tell me something."), return_tensors="pt").input_ids
    matchers = [compiler.matcher(row.constraint) for row in rows]
    prefixes = [tokenize(row.prefix) if row.prefix else [] for row in rows]
    out: list[list[int]] = [[] for _ in rows]
    finished = [False] * len(rows)
    prefix_ok = [True] * len(rows)
    off_untouched = True
    batch = list(range(len(rows)))  # the rows still generating, in cache order
    cache = DynamicCache()
    with torch.no_grad():
        step = model(input_ids=prompt.repeat(len(rows), 1), cache=cache, use_cache=True)
        for _ in range(max(row.limit for row in rows)):
            logits = step.logits[:, -1].float()
            before = logits.clone()
            compiler.fill_masks(logits, [matchers[i] for i in batch])
            off_untouched &= all(
                torch.equal(logits[b], before[b]) for b, i in enumerate(batch) if not matchers[i]
            )
            race = torch.rand(logits.shape, generator=generator).log_().neg_()  # Exp(1)
            tokens = (logits.softmax(-1) / race).argmax(-1)  # a sample of softmax(logits)
            still = []
            for b, i in enumerate(batch):
                n = len(out[i])
                if n < len(prefixes[i]):
                    prefix_ok[i] &= bool(logits[b, prefixes[i][n]] > float("-inf"))
                    tokens[b] = prefixes[i][n]
                token = int(tokens[b])
                if token == EOS:
                    finished[i] = True
                    continue
                out[i].append(token)
                if matchers[i] is not None:
                    matchers[i].consume(token)
                    finished[i] = matchers[i].is_finished()
                if not finished[i] and len(out[i]) < rows[i].limit:
                    still.append(b)
            if not still:
                break
            keep = torch.tensor(still)
            if len(still) < len(batch):
                cache.batch_select_indices(keep)
            batch = [batch[b] for b in still]
            step = model(input_ids=tokens[keep].unsqueeze(-1), cache=cache, use_cache=True)
    results = [
        Sampled(tokenizer.decode(ids, skip_special_tokens=True), done, ok)
        for ids, done, ok in zip(out, finished, prefix_ok, strict=True)
    ]
    return results, off_untouched


SAMPLES = 3
FORCED_LIMIT = 1500  # more than the longest call the schemas allow (Joke: 1300 characters)


@pytest.fixture(scope="module")
def mixed_run(reference_model, tiny_tokenizer, compiler, tokenize):
    """One batch mixing forced rows (every tool, both dialects), auto rows and off rows."""
    rows = [
        Row(Constraint("forced", dialect, (tool,)), FORCED_LIMIT)
        for dialect in DIALECTS
        for tool in TOOLS
        for _ in range(SAMPLES)
    ]
    rows += [Row(Constraint("auto", dialect), 40) for dialect in DIALECTS]
    rows += [
        Row(Constraint("auto", d, ("SongRecommendation",)), FORCED_LIMIT, opener)
        for d, opener in (("functioncall", "<multiplefunctions"), ("tool_call", "<tool_call"))
    ]
    rows += [Row(Constraint("off", dialect), 40) for dialect in DIALECTS]
    results, off_untouched = sample(reference_model, tiny_tokenizer, compiler, tokenize, rows)
    return list(zip(rows, results, strict=True)), off_untouched


def test_forced_rows_are_valid_calls_of_their_tool(mixed_run):
    runs, _ = mixed_run
    forced = [(row, result) for row, result in runs if row.constraint.mode == "forced"]
    assert len(forced) == len(DIALECTS) * len(TOOLS) * SAMPLES
    for row, result in forced:
        assert result.finished, f"{row.constraint} did not finish: {result.text[-80:]!r}"
        parsed = parse_completion(result.text)
        assert parsed.errors == [] and parsed.text == ""
        assert [call.name for call in parsed.calls] == list(row.constraint.tools)
        validate_call(parsed.calls[0])
        assert result.text == format_calls(parsed.calls, row.constraint.dialect)


def test_auto_rows_write_text_or_complete_valid_calls(mixed_run):
    runs, _ = mixed_run
    auto = [(row, result) for row, result in runs if row.constraint.mode == "auto"]
    for row, result in auto:
        parsed = parse_completion(result.text)
        assert parsed.errors == []
        if row.prefix:
            assert result.prefix_allowed and result.finished
            assert result.text.startswith(row.prefix) and parsed.text == ""
            assert parsed.calls
            for call in parsed.calls:
                validate_call(call)
        else:
            assert result.text.strip() and parsed.calls == []
            assert not any(tag in result.text.lower() for tag in CALL_TAGS)


def test_off_rows_are_left_alone(mixed_run):
    runs, off_untouched = mixed_run
    assert off_untouched
    off = [result for row, result in runs if row.constraint.mode == "off"]
    assert all(result.text for result in off)


# -- through the executor ------------------------------------------------------------------


async def test_executor_serves_forced_auto_and_off_rows_together(make_backend, reference):
    backend = await make_backend(grammar_factory=GrammarCompiler, context_window=2048)
    long = GenerationParams(max_new_tokens=FORCED_LIMIT, do_sample=False)
    short = GenerationParams(max_new_tokens=24, do_sample=False)
    requests = [
        GenerationRequest(chat("joke"), long, Constraint("forced", "functioncall", ("Joke",))),
        GenerationRequest(
            chat("book"), long, Constraint("forced", "tool_call", ("book_recommendation",))
        ),
        GenerationRequest(chat("hi"), short, Constraint("auto", "functioncall")),
        GenerationRequest(chat("hi"), short, None),
    ]
    joke, book, auto, free = await asyncio.gather(*(backend.generate(r) for r in requests))
    for result, dialect in ((joke, "functioncall"), (book, "tool_call")):
        assert result.finish_reason == "stop"
        (call,) = parse_completion(result.text).calls
        validate_call(call)
        assert result.text == format_calls([call], dialect)
    assert auto.text.strip() and parse_completion(auto.text).calls == []
    assert free.text == reference(chat("hi"), 24)
