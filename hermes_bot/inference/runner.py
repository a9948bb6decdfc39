"""Runs prefill and decode steps over the paged KV cache; finishes, fails and preempts rows.

Each running row owns a slot: a row of the :class:`PagedCache`'s block tables
and of the sampler's parameters. A decode step feeds every row's last token in
one forward pass, chooses the next tokens on the device and reads them back
once (``tolist``): positions, last tokens, block tables and sampling
parameters stay on the device and change only when rows join, leave or grow a
block. Joining rows are prefilled as a group in chunks of ``prefill_chunk``
tokens, one chunk per step, so running rows keep decoding meanwhile; prompt
blocks already in the :class:`PrefixCache` are pointed at, not computed again,
and a request sharing uncached blocks with another joining one waits for them
to be cached. When the pool runs out of blocks, the newest row goes back to
the queue (preemption) and is prefilled again later with what it generated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import torch

from hermes_bot.config import ExecutorSettings
from hermes_bot.errors import GenerationError, HermesBotError, ModelLoadError
from hermes_bot.inference.jobs import Job
from hermes_bot.inference.kv_cache import (
    BLOCK,
    PagedCache,
    PrefixCache,
    blocks_for,
    free_gpu_bytes,
    pool_tokens,
)
from hermes_bot.inference.loading import LoadedModel
from hermes_bot.inference.metrics import Metrics
from hermes_bot.inference.output import RowOutput
from hermes_bot.inference.prefill import JoiningRow, PrefillGroup
from hermes_bot.inference.sampling import Sampler

_log = logging.getLogger(__name__)

# Faults are reported as (rows involved, error); the worker decides what to retry.
Fault = Callable[[list[Job], BaseException, int], None]
# Jobs handed back to the front of the queue (preempted, or waiting for a shared prefix).
Requeue = Callable[[list[Job]], None]


# Uncached prompt blocks a joining request must share with an earlier one to wait for them.
SHARED_TO_WAIT = 2


def _common_blocks(ids: list[int], other: list[int], start: int) -> int:
    """Whole blocks ``ids`` and ``other`` share from ``start`` (leaving ``ids`` a token)."""
    count = 0
    for begin in range(start, len(ids) - BLOCK, BLOCK):
        if ids[begin : begin + BLOCK] != other[begin : begin + BLOCK]:
            break
        count += 1
    return count


def _bucket(value: int, limit: int) -> int:
    """The next power of two at or above ``value``, at most ``limit``."""
    return min(limit, 1 << max(0, value - 1).bit_length())


class ModelRunner:
    """Owns the running rows, the KV cache and the sampler; only the worker thread calls it."""

    def __init__(
        self,
        loaded: LoadedModel,
        settings: ExecutorSettings,
        context_window: int,
        compiler: Any,
        metrics: Metrics,
        output: RowOutput,
        fault: Fault,
        requeue: Requeue,
    ) -> None:
        model = loaded.model
        if model.config._attn_implementation not in ("sdpa", "eager"):
            raise ModelLoadError(
                f"the executor needs attention 'sdpa' or 'eager', not "
                f"{model.config._attn_implementation!r}: set model.attn_implementation"
            )
        self.loaded, self._compiler, self._metrics = loaded, compiler, metrics
        self._output, self._fault, self._requeue = output, fault, requeue
        self._chunk = settings.prefill_chunk
        self.slots = settings.max_batch_size
        device = loaded.device
        token_bytes = PagedCache.token_bytes(model)
        tokens = pool_tokens(settings, context_window, token_bytes, free_gpu_bytes(device))
        _log.info(
            "KV cache: %d tokens (%.2f GiB), %d requests at the full context window",
            tokens,
            tokens * token_bytes / 2**30,
            tokens // context_window,
        )
        # Padding in a prefill chunk is written up to a chunk past a row's end.
        row_tokens = context_window + self._chunk
        try:
            self.cache = PagedCache.for_model(model, tokens, self.slots, row_tokens)
        except (torch.cuda.OutOfMemoryError, RuntimeError) as error:
            raise ModelLoadError(
                f"a KV cache of {tokens} tokens does not fit ({error}): lower "
                f"executor.kv_cache_tokens (or executor.max_batch_size)"
            ) from error
        self._prefixes = PrefixCache(self.cache, settings.prefix_cache_tokens)
        self._sampler = Sampler(self.slots, model.config.get_text_config().vocab_size, device)
        self._rows: list[Job | None] = [None] * self.slots  # the decoding row in each slot
        self._lengths = [0] * self.slots  # tokens in each slot's cache
        # Where each slot writes its next token: parked (scratch) unless it is decoding.
        self._parked = self.cache.parked
        self._positions = torch.full((self.slots,), self._parked, dtype=torch.long, device=device)
        self._step = torch.zeros(self.slots, dtype=torch.long, device=device)  # 1: decoding
        self._last = torch.zeros(self.slots, dtype=torch.long, device=device)
        self._columns = torch.arange(self._parked + BLOCK, device=device)
        self._open = torch.zeros((), dtype=model.dtype, device=device)
        self._shut = torch.full((), torch.finfo(model.dtype).min, dtype=model.dtype, device=device)
        self._group: PrefillGroup | None = None
        self._compiled_forward: Callable[..., torch.Tensor] | None = None
        if settings.compile:
            # Tensors that live across steps at fixed addresses: CUDA graphs read and write
            # them in place instead of copying them in and out of each replay.
            static = (self.cache.tables, self._positions, self._last)
            for tensor in (*self.cache.keys, *self.cache.values, *static):
                torch._dynamo.mark_static_address(tensor)
            mode = "reduce-overhead" if device.type == "cuda" else None
            self._compiled_forward = torch.compile(self._forward, dynamic=False, mode=mode)

    # -- what the worker asks -------------------------------------------------------------

    @property
    def running(self) -> int:
        """Rows decoding or being prefilled."""
        return len(self.jobs())

    @property
    def joining(self) -> bool:
        """True while a group of joining rows is being prefilled (no other may join)."""
        return self._group is not None

    def jobs(self) -> list[Job]:
        """Every job the runner holds."""
        joining = self._group.jobs() if self._group is not None else []
        return [job for job in self._rows if job is not None] + joining

    def step(self, new: list[Job]) -> None:
        """Drop finished rows, run one decode step, admit ``new``, run one prefill chunk."""
        self._drop_cancelled()
        if any(job is not None for job in self._rows):
            self._decode()
        if new:
            self._admit(new)
        if self._group is not None:
            self._prefill_chunk(self._group)
        if self._group is None:
            self._compact()

    def fail_all(self, error: HermesBotError) -> None:
        """Fail every job with ``error`` and empty every slot."""
        for job in self.jobs():
            self._output.fail(job, error)
        self._clear(self.jobs())

    # -- leaving --------------------------------------------------------------------------

    def _drop_cancelled(self) -> None:
        now = time.monotonic()
        gone = []
        for job in self.jobs():
            if job.cancelled:
                job.done = True
                gone.append(job)
            elif now > job.deadline:
                self._output.fail(job, GenerationError("timed out waiting for the model"))
                gone.append(job)
        if gone:
            self._clear(gone)

    def _clear(self, jobs: list[Job]) -> None:
        leaving = set(jobs)
        for slot, job in enumerate(self._rows):
            if job in leaving:
                self._release(slot)
        if self._group is not None:
            for slot in self._group.drop(leaving):
                self._sampler.release(slot)
                self.cache.release(slot)  # its remaining chunks write to scratch
            if not self._group.jobs():
                self._release_group(self._group)
                self._group = None

    def _release(self, slot: int) -> None:
        self._rows[slot] = None
        self._lengths[slot] = 0
        self._positions[slot] = self._parked
        self._step[slot] = 0
        self._sampler.release(slot)
        self.cache.release(slot)

    def _compact(self) -> None:
        """Move the highest rows into free lower slots, so decoding reads slots 0..B-1."""
        low, high = 0, len(self._rows) - 1
        while True:
            while low < high and self._rows[low] is not None:
                low += 1
            while high > low and self._rows[high] is None:
                high -= 1
            if low >= high:
                return
            self._move(high, low)

    def _move(self, source: int, target: int) -> None:
        self.cache.move(source, target)
        self._sampler.move(source, target)
        for tensor in (self._positions, self._last, self._step):
            tensor[target] = tensor[source]
        self._rows[target] = self._rows[source]
        self._lengths[target] = self._lengths[source]
        self._release(source)

    def _top(self) -> int:
        return max((slot + 1 for slot, job in enumerate(self._rows) if job is not None), default=0)

    # -- decoding -------------------------------------------------------------------------

    def _forward(
        self, ids: torch.Tensor, columns: torch.Tensor, first: int, width: int
    ) -> torch.Tensor:
        """Next-token logits ``[B, V]`` of feeding ``ids`` (``[B, W]``) at ``columns`` of slots
        ``first, first + 1, ...``, attention reading ``width`` positions."""
        self.cache.plan(slice(first, first + ids.shape[0]), columns, width)
        allowed = self._columns[:width] <= columns.unsqueeze(-1)
        mask = torch.where(allowed, self._open, self._shut).unsqueeze(1)
        output = self.loaded.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=columns,
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return output.logits[:, -1, :]

    def _decode(self) -> None:
        self._grow()
        top = self._top()
        if top == 0:
            return
        static = self._compiled_forward is not None  # shapes from a few buckets only
        rows = _bucket(top, self.slots) if static else top
        blocks = blocks_for(max(self._lengths[:top]) + 1)
        width = BLOCK * (_bucket(blocks, blocks_for(self._parked)) if static else blocks)
        columns = self._positions[:rows].unsqueeze(1)
        running = [job for job in self._rows[:top] if job is not None]
        try:
            forward = self._compiled_forward or self._forward
            logits = forward(self._last[:rows].unsqueeze(1), columns, 0, width)
            tokens = self._sampler.select(logits, slice(0, rows), self._masker(self._rows[:rows]))
            self._last[:rows] = tokens
            chosen = tokens.tolist()  # the step's one read from the device
        except Exception as error:
            self._clear(running)
            self._fault(running, error, len(running))
            return
        now, finished = time.monotonic(), []
        self._metrics.tokens(len(running))
        for slot, job in enumerate(self._rows[:top]):
            if job is None:
                continue
            self._lengths[slot] += 1
            if not self._output.advance(job, chosen[slot], now):
                finished.append(slot)
        self._positions[:rows] += self._step[:rows]
        for slot in finished:
            self._release(slot)

    def _grow(self) -> None:
        """A fresh block for each row whose next token starts one; the newest rows go back to
        the queue while the pool has too few."""
        while True:
            full = [
                slot
                for slot, job in enumerate(self._rows)
                if job is not None and self._lengths[slot] == BLOCK * len(self.cache.owned(slot))
            ]
            if len(full) <= self.cache.free:
                break
            self._prefixes.make_room(len(full))
            if len(full) <= self.cache.free:
                break
            newest = max(
                (slot for slot, job in enumerate(self._rows) if job is not None),
                key=lambda slot: self._rows[slot].submitted,  # type: ignore[union-attr]
            )
            job = self._rows[newest]
            assert job is not None
            _log.info("KV cache full: request of %d tokens waits again", self._lengths[newest])
            self._release(newest)
            self._metrics.preempt()
            self._requeue([job])
        if full:
            self.cache.grow(full)

    def _masker(self, rows: list[Any]) -> Callable[[torch.Tensor], None] | None:
        matchers = [job.matcher if job is not None else None for job in rows]
        if all(matcher is None for matcher in matchers):
            return None
        return lambda logits: self._compiler.fill_masks(logits, matchers)

    # -- joining --------------------------------------------------------------------------

    def _admit(self, jobs: list[Job]) -> None:
        self._compact()
        joining: list[tuple[Job, list[int], list[int]]] = []
        later: list[Job] = []  # back to the queue, in order
        claimed: dict[tuple[tuple[int, ...], tuple[int, ...]], list[int]] = {}
        fresh = 0  # blocks the joining rows take from the pool
        for index, job in enumerate(jobs):
            if job.cancelled:
                continue
            try:
                self._attach_matcher(job)
            except Exception as error:
                self._output.fail(job, error)
                continue
            ids = job.prompt_ids + job.generated
            shared = self._prefixes.match(ids)
            start = len(shared) * BLOCK
            claim = (tuple(shared), tuple(ids[start : start + BLOCK]))
            earlier = claimed.get(claim)
            if earlier is not None and _common_blocks(ids, earlier, start) >= SHARED_TO_WAIT:
                # An earlier joining row computes its next blocks: it waits to point at them.
                later.append(job)
                continue
            if self._prefixes.enabled:
                claimed.setdefault(claim, ids)
            self.cache.hold(shared)
            need = fresh + blocks_for(len(ids)) - len(shared)
            if need > self.cache.free:
                self._prefixes.make_room(need)
            if need > self.cache.free:  # the pool is full: it and those after it wait
                self.cache.drop(shared)
                later.extend(job for job in jobs[index:] if not job.cancelled)
                break
            fresh = need
            joining.append((job, ids, shared))
        if later:
            self._requeue(later)
        # Longest prompt first: rows of similar length are prefilled together.
        joining.sort(key=lambda entry: len(entry[1]) - BLOCK * len(entry[2]), reverse=True)
        first = self._top()
        rows: list[JoiningRow] = []
        for slot, (job, ids, shared) in enumerate(joining, first):
            self.cache.assign(slot, shared, len(ids))
            done = BLOCK * len(shared)
            self._metrics.prompt(len(ids), cached=done)
            self._sampler.assign(slot, job.params, ids)
            rows.append(JoiningRow(job, ids, done))
        if rows:
            self._group = PrefillGroup(first, rows, self._chunk, self.loaded.pad_id)

    def _attach_matcher(self, job: Job) -> None:
        if job.matcher is not None or job.constraint is None or job.constraint.mode == "off":
            return
        if self._compiler is None:
            _log.warning("constrained decoding requested but no grammar is configured; ignoring")
            return
        job.matcher = self._compiler.matcher(job.constraint)

    def _prefill_chunk(self, group: PrefillGroup) -> None:
        """Feed the group's next chunk; once its prompts are in, its rows start decoding."""
        chunk = group.next_chunk()
        device = self._last.device
        try:
            outputs = []
            for part in chunk.parts:
                columns = torch.tensor(part.columns, device=device)
                rows = slice(group.first + part.rows.start, group.first + part.rows.stop)
                width = BLOCK * blocks_for(part.reach)
                ids = torch.tensor(part.ids, device=device)
                outputs.append(self._forward(ids, columns, rows.start, width))
            self._metrics.prefilled(chunk.tokens)
            if not chunk.last:
                return
            logits = torch.cat(outputs) if len(outputs) > 1 else outputs[0]
            self._group = None
            jobs = [row.job for row in group.rows]
            tokens = self._sampler.select(logits, group.slots, self._masker(jobs))
            chosen = tokens.tolist()
        except Exception as error:
            self._group = None
            self._release_group(group)
            self._fault(group.jobs(), error, len(group.jobs()) + self.running)
            return
        now = time.monotonic()
        self._last[group.slots] = tokens
        for slot, (row, token) in enumerate(zip(group.rows, chosen, strict=True), group.first):
            if row.job is None:
                continue
            self._prefixes.insert(row.ids, self.cache.owned(slot))
            self._metrics.tokens(1)
            if self._output.advance(row.job, token, now):
                self._rows[slot], self._lengths[slot] = row.job, len(row.ids)
                self._positions[slot] = len(row.ids)
                self._step[slot] = 1
            else:
                self._sampler.release(slot)
                self.cache.release(slot)

    def _release_group(self, group: PrefillGroup) -> None:
        for slot in range(group.slots.start, group.slots.stop):
            self._sampler.release(slot)
            self.cache.release(slot)
