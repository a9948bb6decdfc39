"""Per-row token selection: temperature, top-k, top-p, repetition penalty, greedy rows.

Every slot's parameters live on the device and change only when a row joins
or leaves; the host keeps the few flags that pick the code path, so choosing
tokens never reads anything back from the device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from hermes_bot.backend import GenerationParams


def is_greedy(params: GenerationParams) -> bool:
    """True when ``params`` pick the most likely token (no sampling)."""
    return not params.do_sample or params.temperature <= 0.0


class Sampler:
    """Chooses the next token of the rows in slots ``0..B-1`` from their logits."""

    def __init__(self, slots: int, vocab: int, device: torch.device) -> None:
        self._params: list[GenerationParams | None] = [None] * slots
        self.greedy = torch.ones(slots, dtype=torch.bool, device=device)
        self.temperature = torch.ones(slots, 1, device=device)
        self.top_k = torch.zeros(slots, 1, dtype=torch.long, device=device)
        self.top_p = torch.ones(slots, 1, device=device)
        self.penalty = torch.ones(slots, 1, device=device)
        self.seen = torch.zeros(slots, vocab, dtype=torch.bool, device=device)
        self._rows = torch.arange(slots, device=device)
        self._stale = True
        self._flag_rows = (0, 0)

    # -- rows joining and leaving (host to device only here) ------------------------------

    def assign(self, slot: int, params: GenerationParams, seen: Sequence[int]) -> None:
        """Slot ``slot`` now holds a row sampled with ``params`` that has seen tokens ``seen``."""
        self._params[slot], self._stale = params, True
        self.greedy[slot] = is_greedy(params)
        self.temperature[slot] = max(params.temperature, 1e-5)
        self.top_k[slot] = params.top_k
        self.top_p[slot] = params.top_p
        self.penalty[slot] = params.repetition_penalty
        if params.repetition_penalty != 1.0:
            self.seen[slot] = False
            self.seen[slot, list(seen)] = True

    def move(self, source: int, target: int) -> None:
        """The row in ``source`` now lives in ``target``."""
        self._params[target], self._params[source] = self._params[source], None
        self._stale = True
        for tensor in (self.greedy, self.temperature, self.top_k, self.top_p, self.penalty):
            tensor[target] = tensor[source]
        if self._params[target] is not None and self._params[target].repetition_penalty != 1.0:
            self.seen[target] = self.seen[source]

    def release(self, slot: int) -> None:
        """``slot`` is empty."""
        self._params[slot], self._stale = None, True

    def _flags(self, rows: slice) -> None:
        live = [p for p in self._params[rows] if p is not None]
        sampling = [p for p in live if not is_greedy(p)]
        self._all_greedy = not sampling
        self._penalised = any(p.repetition_penalty != 1.0 for p in live)
        self._unfiltered = all(p.top_k == 0 and p.top_p >= 1.0 for p in sampling)
        self._widest = max((p.top_k for p in sampling), default=0)
        self._all_limited = all(p.top_k > 0 for p in sampling)
        self._flag_rows, self._stale = (rows.start, rows.stop), False

    # -- choosing tokens (device only) ----------------------------------------------------

    def select(
        self,
        logits: torch.Tensor,
        rows: slice,
        mask: Callable[[torch.Tensor], None] | None = None,
    ) -> torch.Tensor:
        """The next token of each row in slots ``rows`` (a device tensor), from its logits.

        ``mask(logits)`` may forbid tokens (constrained decoding) after the penalty.
        """
        if self._stale or (rows.start, rows.stop) != self._flag_rows:
            self._flags(rows)
        logits = logits.float()
        if self._penalised:
            penalty = self.penalty[rows]
            penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
            logits = torch.where(self.seen[rows], penalised, logits)
        if mask is not None:
            mask(logits)
        tokens = _argmax(logits) if self._all_greedy else self._sample(logits, rows)
        if self._penalised:
            self.seen[self._rows[rows], tokens] = True
        return tokens

    def _sample(self, logits: torch.Tensor, rows: slice) -> torch.Tensor:
        greedy = self.greedy[rows]
        top_k, top_p = self.top_k[rows], self.top_p[rows]
        best = _argmax(logits)
        scaled = logits / self.temperature[rows]
        if self._unfiltered:
            return torch.where(greedy, best, _draw(scaled.softmax(dim=-1)))
        if self._all_limited and 0 < self._widest < scaled.shape[-1]:
            # Every sampling row keeps at most ``widest`` tokens: rank only those.
            ordered, order = scaled.topk(self._widest, dim=-1)
        else:
            ordered, order = scaled.sort(dim=-1, descending=True)
        rank = torch.arange(ordered.shape[-1], device=logits.device).unsqueeze(0)
        drop = (top_k > 0) & (rank >= top_k)
        probs = ordered.masked_fill(drop, float("-inf")).softmax(dim=-1)
        # Drop a token when the tokens ranked above it already hold top_p of the mass.
        drop |= (probs.cumsum(dim=-1) - probs) > top_p
        drop[:, 0] = False
        ordered = ordered.masked_fill(drop, float("-inf"))
        picked = _draw(ordered.softmax(dim=-1)).unsqueeze(-1)
        return torch.where(greedy, best, order.gather(-1, picked).squeeze(-1))


def _draw(probs: torch.Tensor) -> torch.Tensor:
    """One sample per row of ``probs``: the exponential race (no host synchronisation, and far
    cheaper than ``multinomial`` over a whole vocabulary)."""
    race = torch.rand_like(probs).log_().neg_()  # Exp(1) draws; rand is faster than exponential_
    return _argmax(probs / race)


def _argmax(values: torch.Tensor) -> torch.Tensor:
    """``values.argmax(dim=-1)`` (the first of equal maxima); on the CPU through numpy, whose
    vectorised argmax is about 15x faster than torch's over a vocabulary."""
    if values.device.type == "cpu" and values.dtype == torch.float32:
        return torch.from_numpy(values.numpy().argmax(axis=-1))
    return values.argmax(dim=-1)
