"""Per-row token selection."""

from __future__ import annotations

import torch

from hermes_bot.backend import GenerationParams
from hermes_bot.inference.sampling import Sampler


def sampler_for(params: list[GenerationParams], vocab: int, seen=None) -> Sampler:
    sampler = Sampler(len(params) + 3, vocab, torch.device("cpu"))
    for slot, p in enumerate(params):
        sampler.assign(slot, p, seen[slot] if seen else [])
    return sampler


def draws(sampler: Sampler, logits: torch.Tensor, times: int) -> list[set[int]]:
    seen: list[set[int]] = [set() for _ in logits]
    for _ in range(times):
        for row, token in enumerate(sampler.select(logits, slice(0, len(logits))).tolist()):
            seen[row].add(token)
    return seen


def test_rows_with_different_params_share_a_batch() -> None:
    torch.manual_seed(0)
    logits = torch.randn(4, 50)
    params = [
        GenerationParams(do_sample=False),
        GenerationParams(do_sample=True, top_k=1),
        GenerationParams(do_sample=True, top_p=1e-6),
        GenerationParams(do_sample=True, temperature=0.0),
    ]
    sampler = sampler_for(params, 50)
    for _ in range(20):
        assert sampler.select(logits, slice(0, 4)).tolist() == logits.argmax(-1).tolist()


def test_top_k_limits_sampling_to_the_k_best() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 100)
    sampler = sampler_for([GenerationParams(top_k=3, top_p=1.0, temperature=5.0)] * 2, 100)
    best = logits.topk(3).indices
    assert draws(sampler, logits, 200) == [set(best[0].tolist()), set(best[1].tolist())]


def test_unfiltered_rows_sample_the_whole_distribution() -> None:
    torch.manual_seed(0)
    logits = torch.zeros(2, 10)
    sampler = sampler_for([GenerationParams(top_k=0, top_p=1.0, temperature=1.0)] * 2, 10)
    assert draws(sampler, logits, 300) == [set(range(10)), set(range(10))]


def test_top_p_keeps_the_smallest_set_holding_the_mass() -> None:
    torch.manual_seed(0)
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().repeat(2, 1)
    params = [
        GenerationParams(top_k=0, top_p=0.7, temperature=1.0),
        GenerationParams(top_k=3, top_p=1.0, temperature=1.0),
    ]
    assert draws(sampler_for(params, 4), logits, 300) == [{0, 1}, {0, 1, 2}]


def test_rows_are_selected_by_slot_and_keep_their_params_when_moved() -> None:
    logits = torch.tensor([[0.0, 5.0, 1.0]])
    sampler = sampler_for([GenerationParams(do_sample=False)], 3)
    sampler.assign(3, GenerationParams(do_sample=True, top_k=1, repetition_penalty=10.0), [1])
    sampler.move(3, 0)
    # Slot 0 now holds the penalised row: token 1 was seen, so its 5.0 becomes 0.5.
    assert sampler.select(logits, slice(0, 1)).tolist() == [2]


def test_repetition_penalty_only_touches_seen_tokens_of_its_row() -> None:
    logits = torch.tensor([[2.0, -2.0, 1.5], [2.0, -2.0, 1.5]])
    params = [
        GenerationParams(do_sample=False, repetition_penalty=2.0),
        GenerationParams(do_sample=False),
    ]
    sampler = sampler_for(params, 3, seen=[[0, 1], [0, 1]])
    # Row 0: 2.0 -> 1.0 (seen), -2.0 -> -4.0 (seen), 1.5 untouched: token 2 wins.
    assert sampler.select(logits.clone(), slice(0, 2)).tolist() == [2, 0]
    # The chosen token counts as seen from now on: 1.5 -> 0.75 loses to 1.0.
    assert sampler.select(logits.clone(), slice(0, 2)).tolist() == [0, 0]
