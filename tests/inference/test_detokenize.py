"""Incremental detokenization: the piece table, its proof, and the window fallback."""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hermes_bot.inference.detokenize import (
    IncrementalDetokenizer,
    PieceDetokenizer,
    WindowDetokenizer,
    _proven,
    decode,
    piece_table,
)

# What the tiny (OpenHermes) tokenizer gets, and the fallback forced on it.
WAYS = [IncrementalDetokenizer, WindowDetokenizer]

TEXTS = st.one_of(
    st.text(max_size=80),
    st.lists(
        st.sampled_from(["🦜", "ꙮ", "€", "世界", "é", " x", "a", "\n", " ", "  ", "<|im_end|>"]),
        max_size=40,
    ).map("".join),
)


def stream(detokenizer: IncrementalDetokenizer, ids: list[int]) -> list[str]:
    return [detokenizer.push(token) for token in ids] + [detokenizer.flush()]


def assert_streams(way, tokenizer, ids: list[int]) -> None:
    """The deltas joined, and ``.text``, are the decoded text of ``ids``."""
    detokenizer = way(tokenizer)
    assert "".join(stream(detokenizer, ids)) == detokenizer.text == decode(tokenizer, ids)


@pytest.fixture(scope="module")
def byte_level_tokenizer():
    """A GPT-2-style byte-level BPE (no byte-fallback pieces, no space rule), trained here."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|im_end|>"],
    )
    backend.train_from_iterator(["Héllo wörld — 世界 🦜 ꙮ done\n  two  spaces"] * 8, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", clean_up_tokenization_spaces=False
    )


def test_the_openhermes_tokenizer_streams_by_its_piece_table(
    tiny_tokenizer, hub_layout_model_dir
) -> None:
    from transformers import AutoTokenizer

    assert isinstance(IncrementalDetokenizer(tiny_tokenizer), PieceDetokenizer)
    table = piece_table(tiny_tokenizer)
    assert table is not None
    # <unk> <s> </s> <|im_end|> <|im_start|> are dropped; "▁" is a space, "<0x0A>" one byte.
    assert len(table) == 32002 - 5 and 32000 not in table
    assert (table[28705], table[264], table[13]) == (" ", " a", 0x0A)
    # The hub's files (tokenizer.model, no tokenizer.json) give the same table.
    assert piece_table(AutoTokenizer.from_pretrained(hub_layout_model_dir)) == table


def tamper_space(pieces) -> None:
    pieces[28705] = "_"


def tamper_byte(pieces) -> None:
    pieces[0xF0 + 3] = 0xF1  # the first byte of 🦜


def keep_special(pieces) -> None:
    pieces[32000] = "<|im_end|>"


@pytest.mark.parametrize("tamper", [tamper_space, tamper_byte, keep_special])
def test_a_table_that_does_not_reproduce_decode_is_refused(tiny_tokenizer, tamper) -> None:
    pieces = dict(piece_table(tiny_tokenizer))
    assert _proven(pieces, tiny_tokenizer)
    tamper(pieces)
    assert not _proven(pieces, tiny_tokenizer)


def test_a_byte_level_tokenizer_falls_back_to_windows(byte_level_tokenizer) -> None:
    assert piece_table(byte_level_tokenizer) is None
    assert isinstance(IncrementalDetokenizer(byte_level_tokenizer), WindowDetokenizer)
    with pytest.raises(ValueError, match="does not reproduce"):
        PieceDetokenizer(byte_level_tokenizer)


@pytest.mark.parametrize("way", WAYS)
def test_deltas_never_split_characters_and_join_to_the_text(tiny_tokenizer, way) -> None:
    # Long enough for the window to move, also in the middle of byte-fallback characters.
    text = "Héllo wörld — 世界 🦜 ꙮ done\n  two  spaces " + "🦜ꙮ世界 x" * 12
    ids = tiny_tokenizer(text, add_special_tokens=False).input_ids
    detokenizer = way(tiny_tokenizer)
    deltas = stream(detokenizer, ids)
    assert "".join(deltas) == detokenizer.text == decode(tiny_tokenizer, ids) == text
    assert not any("\ufffd" in d for d in deltas)
    assert any(d == "" for d in deltas[:-1])  # byte pieces of 🦜 and ꙮ were held back


def test_detokenizing_a_long_answer_matches_decoding_it_whole(tiny_tokenizer) -> None:
    torch.manual_seed(0)
    ids = torch.randint(3, 32000, (600,)).tolist()  # any tokens, byte pieces included
    assert_streams(IncrementalDetokenizer, tiny_tokenizer, ids)


@pytest.mark.parametrize("way", WAYS)
@settings(max_examples=150, deadline=None)
@given(text=TEXTS)
@example(text="🦜🦜🦜ꙮ🦜")  # the window once moved into the middle of 🦜's bytes
def test_any_text_streams_to_its_decoded_text(tiny_tokenizer, way, text: str) -> None:
    assert_streams(way, tiny_tokenizer, tiny_tokenizer(text, add_special_tokens=False).input_ids)


# Byte pieces drawn often, special tokens, ids past the vocabulary.
@settings(max_examples=300, deadline=None)
@given(ids=st.lists(st.one_of(st.integers(0, 32003), st.integers(3, 258)), max_size=80))
@example(ids=[3, 131])  # "\x00" then a byte that makes the run invalid: both become U+FFFD
def test_any_ids_stream_to_their_decoded_text_by_the_table(tiny_tokenizer, ids) -> None:
    assert_streams(IncrementalDetokenizer, tiny_tokenizer, ids)


# Windows are exact for any ids of a byte-level tokenizer. Under byte fallback a later byte can
# turn a whole run of byte pieces, characters already sent included, into U+FFFD: only the
# table knows to hold a run back, so there the window way is held to texts (above).
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_ids_stream_to_their_decoded_text_by_windows(byte_level_tokenizer, data) -> None:
    ids = data.draw(st.lists(st.integers(0, len(byte_level_tokenizer)), max_size=80))
    assert_streams(IncrementalDetokenizer, byte_level_tokenizer, ids)


@settings(max_examples=150, deadline=None)
@given(text=TEXTS)
def test_any_text_streams_by_windows_on_a_byte_level_tokenizer(byte_level_tokenizer, text) -> None:
    ids = byte_level_tokenizer(text, add_special_tokens=False).input_ids
    assert_streams(IncrementalDetokenizer, byte_level_tokenizer, ids)
