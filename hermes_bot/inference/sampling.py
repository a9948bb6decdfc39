"""Per-row token selection: each batch row has its own temperature, top-k, top-p and greedy flag."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from hermes_bot.backend import GenerationParams


@dataclass
class RowParams:
    """Sampling parameters of the rows of a batch, as tensors on the logits' device."""

    greedy: torch.Tensor  # bool [B]
    temperature: torch.Tensor  # float [B, 1]
    top_k: torch.Tensor  # long [B, 1], 0 = no limit
    top_p: torch.Tensor  # float [B, 1]
    penalty: list[float]  # repetition penalty per row (1.0 = off)

    @classmethod
    def build(cls, params: Sequence[GenerationParams], device: torch.device) -> RowParams:
        """Tensors for ``params``, one entry per row."""
        greedy = [cls.is_greedy(p) for p in params]
        return cls(
            greedy=torch.tensor(greedy, dtype=torch.bool, device=device),
            temperature=torch.tensor(
                [[max(p.temperature, 1e-5)] for p in params], dtype=torch.float32, device=device
            ),
            top_k=torch.tensor([[p.top_k] for p in params], dtype=torch.long, device=device),
            top_p=torch.tensor([[p.top_p] for p in params], dtype=torch.float32, device=device),
            penalty=[p.repetition_penalty for p in params],
        )

    @staticmethod
    def is_greedy(params: GenerationParams) -> bool:
        """True when ``params`` pick the most likely token (no sampling)."""
        return not params.do_sample or params.temperature <= 0.0

    @property
    def all_greedy(self) -> bool:
        """True when no row samples (no randomness needed)."""
        return bool(self.greedy.all())


def apply_repetition_penalty(
    logits: torch.Tensor, penalty: Sequence[float], seen: Sequence[Sequence[int]]
) -> None:
    """HF-style repetition penalty, in place, only for rows whose penalty is not 1."""
    for row, value in enumerate(penalty):
        if value == 1.0 or not seen[row]:
            continue
        ids = torch.tensor(sorted(set(seen[row])), dtype=torch.long, device=logits.device)
        scores = logits[row, ids]
        logits[row, ids] = torch.where(scores < 0, scores * value, scores / value)


def select_tokens(logits: torch.Tensor, rows: RowParams) -> torch.Tensor:
    """The next token of every row: argmax for greedy rows, filtered sampling for the others."""
    logits = logits.float()
    greedy_choice = logits.argmax(dim=-1)
    if rows.all_greedy:
        return greedy_choice
    scaled = logits / rows.temperature
    top_k, top_p = rows.top_k.squeeze(-1), rows.top_p.squeeze(-1)
    if bool((((top_k == 0) & (top_p >= 1.0)) | rows.greedy).all()):
        # No row filters its candidates: sample from the whole distribution.
        sampled = torch.multinomial(scaled.softmax(dim=-1), num_samples=1).squeeze(-1)
        return torch.where(rows.greedy, greedy_choice, sampled)
    limited = (top_k > 0) | rows.greedy
    widest = int(rows.top_k.max())
    if bool(limited.all()) and 0 < widest < scaled.shape[-1]:
        # Every sampling row keeps at most ``widest`` tokens: rank only those.
        ordered, order = scaled.topk(widest, dim=-1)
    else:
        ordered, order = scaled.sort(dim=-1, descending=True)
    rank = torch.arange(ordered.shape[-1], device=logits.device).unsqueeze(0)
    drop = (rows.top_k > 0) & (rank >= rows.top_k)
    probs = ordered.masked_fill(drop, float("-inf")).softmax(dim=-1)
    # Drop a token when the tokens ranked above it already hold top_p of the mass.
    drop |= (probs.cumsum(dim=-1) - probs) > rows.top_p
    drop[:, 0] = False
    ordered = ordered.masked_fill(drop, float("-inf"))
    picked = torch.multinomial(ordered.softmax(dim=-1), num_samples=1)
    sampled = order.gather(-1, picked).squeeze(-1)
    return torch.where(rows.greedy, greedy_choice, sampled)
