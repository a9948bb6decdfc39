"""The running batch's tensors: left-padded KV cache, attention mask, positions; join and leave.

Every row's tokens sit right-aligned in the cache, so rows can join (their prefill
cache is left-padded to the common length and concatenated) and leave (their rows
are dropped and all-padding columns trimmed) between decode steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache


@dataclass
class BatchState:
    """KV cache and per-row bookkeeping of a set of rows decoding together."""

    cache: DynamicCache
    mask: torch.Tensor  # long [B, L]: 1 for real tokens, 0 for padding
    positions: torch.Tensor  # long [B]: position id of each row's next token
    last: torch.Tensor  # long [B]: each row's latest token (the next input)

    @property
    def rows(self) -> int:
        """Number of rows."""
        return self.mask.shape[0]


def _layers(cache: DynamicCache) -> list[Any]:
    return [layer for layer in cache.layers if layer.is_initialized]


@torch.inference_mode()
def prefill(
    model: Any, prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[BatchState, torch.Tensor]:
    """Run the prompts (left-padded) through the model; the state and last-position logits."""
    width = max(len(ids) for ids in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        mask[row, width - len(prompt) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    position_ids = (mask.cumsum(dim=-1) - 1).clamp(min=0)
    cache = DynamicCache()
    output = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=position_ids,
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    lengths = torch.tensor([len(p) for p in prompts], dtype=torch.long, device=device)
    # ``last`` is set by the caller once it has chosen each row's first token.
    state = BatchState(
        cache=output.past_key_values, mask=mask, positions=lengths, last=torch.zeros_like(lengths)
    )
    return state, output.logits[:, -1, :]


@torch.inference_mode()
def decode_step(model: Any, state: BatchState) -> torch.Tensor:
    """Feed each row's last token; the next-token logits [B, V]. Grows the state by one column."""
    rows, width = state.mask.shape
    mask = torch.cat([state.mask, state.mask.new_ones((rows, 1))], dim=1)
    output = model(
        input_ids=state.last.unsqueeze(1),
        attention_mask=mask,
        position_ids=state.positions.unsqueeze(1),
        past_key_values=state.cache,
        cache_position=torch.tensor([width], device=mask.device),
        use_cache=True,
        logits_to_keep=1,
    )
    state.cache = output.past_key_values
    state.mask = mask
    state.positions = state.positions + 1
    return output.logits[:, -1, :]


def _left_pad(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def merge(first: BatchState | None, second: BatchState) -> BatchState:
    """One state holding the rows of ``first`` then those of ``second``."""
    if first is None or first.rows == 0:
        return second
    width = max(first.mask.shape[1], second.mask.shape[1])
    for left, right in zip(_layers(first.cache), _layers(second.cache), strict=True):
        left.keys = torch.cat([_left_pad(left.keys, width, 2), _left_pad(right.keys, width, 2)])
        left.values = torch.cat(
            [_left_pad(left.values, width, 2), _left_pad(right.values, width, 2)]
        )
    return BatchState(
        cache=first.cache,
        mask=torch.cat([_left_pad(first.mask, width, 1), _left_pad(second.mask, width, 1)]),
        positions=torch.cat([first.positions, second.positions]),
        last=torch.cat([first.last, second.last]),
    )


def keep_rows(state: BatchState, rows: Sequence[int]) -> BatchState | None:
    """The state restricted to ``rows`` with all-padding columns trimmed (None when empty)."""
    if not rows:
        return None
    index = torch.tensor(list(rows), dtype=torch.long, device=state.mask.device)
    mask = state.mask.index_select(0, index)
    start = int(mask.any(dim=0).long().argmax())
    for layer in _layers(state.cache):
        layer.keys = layer.keys.index_select(0, index)[:, :, start:]
        layer.values = layer.values.index_select(0, index)[:, :, start:]
    return BatchState(
        cache=state.cache,
        mask=mask[:, start:],
        positions=state.positions.index_select(0, index),
        last=state.last.index_select(0, index),
    )
