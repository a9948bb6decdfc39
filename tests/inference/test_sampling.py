"""Per-row token selection and incremental detokenization."""

from __future__ import annotations

import torch

from hermes_bot.backend import GenerationParams
from hermes_bot.inference.detokenize import TextDecoder
from hermes_bot.inference.sampling import RowParams, apply_repetition_penalty, select_tokens


def test_rows_with_different_params_share_a_batch() -> None:
    torch.manual_seed(0)
    logits = torch.randn(4, 50)
    params = [
        GenerationParams(do_sample=False),
        GenerationParams(do_sample=True, top_k=1),
        GenerationParams(do_sample=True, top_p=1e-6),
        GenerationParams(do_sample=True, temperature=0.0),
    ]
    rows = RowParams.build(params, logits.device)
    for _ in range(20):
        assert select_tokens(logits, rows).tolist() == logits.argmax(-1).tolist()


def test_top_k_limits_sampling_to_the_k_best() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 100)
    rows = RowParams.build([GenerationParams(top_k=3, top_p=1.0, temperature=5.0)] * 2, "cpu")
    best = logits.topk(3).indices
    seen = [set(), set()]
    for _ in range(200):
        for row, token in enumerate(select_tokens(logits, rows).tolist()):
            seen[row].add(token)
    assert seen == [set(best[0].tolist()), set(best[1].tolist())]


def test_unfiltered_rows_sample_the_whole_distribution() -> None:
    torch.manual_seed(0)
    logits = torch.zeros(2, 10)
    rows = RowParams.build([GenerationParams(top_k=0, top_p=1.0, temperature=1.0)] * 2, "cpu")
    seen = [set(), set()]
    for _ in range(300):
        for row, token in enumerate(select_tokens(logits, rows).tolist()):
            seen[row].add(token)
    assert seen == [set(range(10)), set(range(10))]


def test_top_p_keeps_the_smallest_set_holding_the_mass() -> None:
    torch.manual_seed(0)
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().repeat(2, 1)
    params = [
        GenerationParams(top_k=0, top_p=0.7, temperature=1.0),
        GenerationParams(top_k=3, top_p=1.0, temperature=1.0),
    ]
    rows = RowParams.build(params, "cpu")
    seen = [set(), set()]
    for _ in range(300):
        for row, token in enumerate(select_tokens(logits, rows).tolist()):
            seen[row].add(token)
    assert seen == [{0, 1}, {0, 1, 2}]


def test_repetition_penalty_only_touches_seen_tokens_of_its_row() -> None:
    logits = torch.tensor([[2.0, -2.0, 1.0], [2.0, -2.0, 1.0]])
    apply_repetition_penalty(logits, [2.0, 1.0], [[0, 1], [0, 1]])
    assert logits.tolist() == [[1.0, -4.0, 1.0], [2.0, -2.0, 1.0]]


def test_deltas_never_split_characters_and_join_to_the_text(tiny_tokenizer) -> None:
    text = "Héllo wörld — 世界 🦜 ꙮ done\n  two  spaces"
    ids = tiny_tokenizer(text, add_special_tokens=False).input_ids
    decoder = TextDecoder(tiny_tokenizer)
    deltas = [decoder.delta(ids[: n + 1], final=n == len(ids) - 1) for n in range(len(ids))]
    assert "".join(deltas) == tiny_tokenizer.decode(ids) == text
    assert not any("\ufffd" in d for d in deltas)
    assert any(d == "" for d in deltas)  # byte pieces of 🦜 and ꙮ were held back
