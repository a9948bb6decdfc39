"""Runs prefill and decode steps over the slot cache; finishes and fails rows.

Each running row owns a slot of the :class:`SlotCache`. A decode step feeds
every row's last token in one forward pass, chooses the next tokens on the
device and reads them back once (``tolist``): positions, last tokens and
sampling parameters stay on the device and change only when rows join or
leave. Joining rows are prefilled as a group in chunks of ``prefill_chunk``
tokens, one chunk per step, so running rows keep decoding meanwhile; prompt
blocks already in the :class:`PrefixCache` are copied, not computed again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from hermes_bot.backend import FinishReason, GenerationResult
from hermes_bot.config import ExecutorSettings
from hermes_bot.errors import GenerationError, HermesBotError, ModelLoadError
from hermes_bot.inference.detokenize import IncrementalDetokenizer, decode
from hermes_bot.inference.jobs import Job, Outbox
from hermes_bot.inference.kv_cache import PrefixCache, SlotCache
from hermes_bot.inference.loading import LoadedModel
from hermes_bot.inference.metrics import Metrics
from hermes_bot.inference.sampling import Sampler

_log = logging.getLogger(__name__)

# Faults are reported as (rows involved, error); the worker decides what to retry.
Fault = Callable[[list[Job], BaseException, int], None]


@dataclass(eq=False)
class _Joining:
    """A row being prefilled: ``done`` of its ``ids`` are in its slot's cache."""

    job: Job | None  # None once it was cancelled or timed out
    ids: list[int]
    done: int


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
        outbox: Outbox,
        fault: Fault,
    ) -> None:
        model = loaded.model
        if model.config._attn_implementation not in ("sdpa", "eager"):
            raise ModelLoadError(
                f"the executor needs attention 'sdpa' or 'eager', not "
                f"{model.config._attn_implementation!r}: set model.attn_implementation"
            )
        self.loaded, self._compiler, self._metrics = loaded, compiler, metrics
        self._outbox, self._fault = outbox, fault
        self._chunk = settings.prefill_chunk
        self.slots = settings.max_batch_size
        device = loaded.device
        self.cache = SlotCache.for_model(model, self.slots, context_window + self._chunk)
        self._prefixes = PrefixCache(settings.prefix_cache_tokens)
        self._sampler = Sampler(self.slots, model.config.get_text_config().vocab_size, device)
        self._rows: list[Job | None] = [None] * self.slots  # the decoding row in each slot
        self._lengths = [0] * self.slots  # tokens in each slot's cache
        # Where each slot writes its next token; empty slots write to a scratch column.
        self._parked = self.cache.capacity - 1
        self._positions = torch.full((self.slots,), self._parked, dtype=torch.long, device=device)
        self._step = torch.zeros(self.slots, dtype=torch.long, device=device)  # 1: decoding
        self._last = torch.zeros(self.slots, dtype=torch.long, device=device)
        self._columns = torch.arange(self.cache.capacity, device=device)
        self._open = torch.zeros((), dtype=model.dtype, device=device)
        self._shut = torch.full((), torch.finfo(model.dtype).min, dtype=model.dtype, device=device)
        self._joining: list[_Joining] = []
        self._first_joining = 0
        self._compiled = settings.compile
        self._decode_forward = self._forward
        if settings.compile:
            mode = "reduce-overhead" if device.type == "cuda" else None
            self._decode_forward = torch.compile(self._forward, dynamic=False, mode=mode)

    # -- what the worker asks -------------------------------------------------------------

    @property
    def running(self) -> int:
        """Rows decoding or being prefilled."""
        return sum(job is not None for job in self._rows) + len(self._joining)

    @property
    def joining(self) -> bool:
        """True while a group of joining rows is being prefilled (no other may join)."""
        return bool(self._joining)

    def jobs(self) -> list[Job]:
        """Every job the runner holds."""
        joining = [j.job for j in self._joining if j.job is not None]
        return [job for job in self._rows if job is not None] + joining

    def step(self, new: list[Job]) -> None:
        """Drop finished rows, run one decode step, admit ``new``, run one prefill chunk."""
        self._drop_cancelled()
        if any(job is not None for job in self._rows):
            self._decode()
        if new:
            self._admit(new)
        if self._joining:
            self._prefill_chunk()
        if not self._joining:
            self._compact()

    def fail_all(self, error: HermesBotError) -> None:
        """Fail every job with ``error`` and empty every slot."""
        for job in self.jobs():
            self.fail(job, error)
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
                self.fail(job, GenerationError("timed out waiting for the model"))
                gone.append(job)
        if gone:
            self._clear(gone)

    def _clear(self, jobs: list[Job]) -> None:
        leaving = set(jobs)
        for slot, job in enumerate(self._rows):
            if job in leaving:
                self._release(slot)
        for offset, joining in enumerate(self._joining):
            if joining.job in leaving:
                joining.job = None  # its slot stays reserved until the group's prefill ends
                self._sampler.release(self._first_joining + offset)
        if all(joining.job is None for joining in self._joining):
            self._joining = []

    def _release(self, slot: int) -> None:
        self._rows[slot] = None
        self._lengths[slot] = 0
        self._positions[slot] = self._parked
        self._step[slot] = 0
        self._sampler.release(slot)

    def _compact(self) -> None:
        """Move the highest rows into free lower slots, so decoding reads slots 0..B-1."""
        free = [slot for slot, job in enumerate(self._rows) if job is None]
        for target in free:
            source = self._top() - 1
            if source <= target:
                break
            length = self._lengths[source]
            self.cache.move(source, target, length)
            self._metrics.moved(length * self.cache.bytes_per_token)
            self._sampler.move(source, target)
            for tensor in (self._positions, self._last, self._step):
                tensor[target] = tensor[source]
            self._rows[target] = self._rows[source]
            self._lengths[target] = length
            self._release(source)

    def _top(self) -> int:
        return max((slot + 1 for slot, job in enumerate(self._rows) if job is not None), default=0)

    # -- decoding -------------------------------------------------------------------------

    def _forward(self, ids: torch.Tensor, columns: torch.Tensor, width: int) -> torch.Tensor:
        """Next-token logits ``[B, V]`` of feeding ``ids`` (``[B, W]``) at ``columns``."""
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
        top = self._top()
        rows = _bucket(top, self.slots) if self._compiled else top
        longest = max(self._lengths[:top]) + 1
        width = _bucket(longest, self.cache.capacity) if self._compiled else longest
        columns = self._positions[:rows].unsqueeze(1)
        running = [job for job in self._rows[:top] if job is not None]
        try:
            self.cache.plan(slice(0, rows), columns, width)
            logits = self._decode_forward(self._last[:rows].unsqueeze(1), columns, width)
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
            if not self._advance(job, chosen[slot], now):
                finished.append(slot)
        self._positions[:rows] += self._step[:rows]
        for slot in finished:
            self._release(slot)

    def _masker(self, rows: list[Any]) -> Callable[[torch.Tensor], None] | None:
        matchers = [job.matcher if job is not None else None for job in rows]
        if all(matcher is None for matcher in matchers):
            return None
        return lambda logits: self._compiler.fill_masks(logits, matchers)

    # -- joining --------------------------------------------------------------------------

    def _admit(self, jobs: list[Job]) -> None:
        self._compact()
        first = self._top()
        group = []
        for job in jobs:
            if job.cancelled:
                continue
            try:
                self._attach_matcher(job)
            except Exception as error:
                self.fail(job, error)
                continue
            slot = first + len(group)
            ids = job.prompt_ids + job.generated
            done, blocks = self._prefixes.match(ids)
            if blocks is not None:
                self.cache.write(slot, blocks)
            self._metrics.prompt(len(ids), cached=done)
            self._sampler.assign(slot, job.params, ids)
            group.append(_Joining(job, ids, done))
        self._joining, self._first_joining = group, first

    def _attach_matcher(self, job: Job) -> None:
        if job.matcher is not None or job.constraint is None or job.constraint.mode == "off":
            return
        if self._compiler is None:
            _log.warning("constrained decoding requested but no grammar is configured; ignoring")
            return
        job.matcher = self._compiler.matcher(job.constraint)

    def _prefill_chunk(self) -> None:
        """Feed the group's next chunk; rows' prompts all end in the group's last chunk."""
        group, first = self._joining, self._first_joining
        left = [len(j.ids) - j.done for j in group]
        chunks = -(-max(left) // self._chunk)
        takes = [min(self._chunk, max(0, n - (chunks - 1) * self._chunk)) for n in left]
        width = max(takes)
        ids, columns = [], []
        for joining, take in zip(group, takes, strict=True):
            pads = width - take
            end = joining.done + take
            ids.append([self.loaded.pad_id] * pads + joining.ids[joining.done : end])
            # Padding goes to columns past the row's end; later tokens overwrite them.
            columns.append([*range(end, end + pads), *range(joining.done, end)])
        live = [j.job for j in group if j.job is not None]
        device = self._last.device
        try:
            columns_t = torch.tensor(columns, device=device)
            reach = max(map(max, columns)) + 1
            self.cache.plan(slice(first, first + len(group)), columns_t, reach)
            logits = self._forward(torch.tensor(ids, device=device), columns_t, reach)
        except Exception as error:
            self._abandon_group()
            self._fault(live, error, len(live) + self.running)
            return
        self._metrics.prefilled(sum(takes))
        for joining, take in zip(group, takes, strict=True):
            joining.done += take
        if chunks == 1:
            self._start_decoding(logits)

    def _start_decoding(self, logits: torch.Tensor) -> None:
        group, first = self._joining, self._first_joining
        self._joining = []
        rows = slice(first, first + len(group))
        live = [j.job for j in group if j.job is not None]
        try:
            tokens = self._sampler.select(logits, rows, self._masker([j.job for j in group]))
            chosen = tokens.tolist()
        except Exception as error:
            self._joining = group
            self._abandon_group()
            self._fault(live, error, len(live) + self.running)
            return
        now = time.monotonic()
        self._last[rows] = tokens
        for offset, (joining, token) in enumerate(zip(group, chosen, strict=True)):
            slot = first + offset
            if joining.job is None:
                continue
            self._prefixes.insert(joining.ids, self.cache, slot)
            self._metrics.tokens(1)
            if self._advance(joining.job, token, now):
                self._rows[slot], self._lengths[slot] = joining.job, len(joining.ids)
                self._positions[slot] = len(joining.ids)
                self._step[slot] = 1
            else:
                self._sampler.release(slot)

    def _abandon_group(self) -> None:
        for offset in range(len(self._joining)):
            self._sampler.release(self._first_joining + offset)
        self._joining = []

    # -- finishing ------------------------------------------------------------------------

    def _advance(self, job: Job, token: int, now: float) -> bool:
        """Record ``token`` for ``job``; False when the job has finished (or failed)."""
        if job.first_token_at is None:
            job.first_token_at = now
            self._metrics.first_token(now - job.submitted)
        finish: FinishReason | None = None
        if token in self.loaded.stop_ids:
            finish = "stop"
        else:
            job.generated.append(token)
            if job.matcher is not None:
                try:
                    job.matcher.consume(token)
                except Exception as error:
                    self.fail(job, error)
                    return False
                if job.matcher.is_finished():
                    finish = "stop"
            if finish is None and len(job.generated) >= job.params.max_new_tokens:
                finish = "length"
            if job.stream:
                if job.detokenizer is None:
                    job.detokenizer = IncrementalDetokenizer(self.loaded.tokenizer)
                delta = job.detokenizer.push(token)
                if delta:
                    self._outbox.post(job, delta)
        if finish is None:
            return True
        self._finish(job, finish, now)
        return False

    def _finish(self, job: Job, finish: FinishReason, now: float) -> None:
        if job.stream:
            detokenizer = job.detokenizer or IncrementalDetokenizer(self.loaded.tokenizer)
            rest = detokenizer.flush()
            text = detokenizer.text
        else:
            rest, text = "", decode(self.loaded.tokenizer, job.generated)
        job.done = True
        self._metrics.finished(now - job.submitted)
        result = GenerationResult(
            text=text,
            prompt_tokens=len(job.prompt_ids),
            completion_tokens=len(job.generated),
            finish_reason=finish,
        )
        self._outbox.post(job, rest, result)

    def fail(self, job: Job, error: BaseException) -> None:
        """Deliver ``error`` to ``job`` (once)."""
        if job.done:
            return
        job.done = True
        self._metrics.finished(None)
        if not isinstance(error, HermesBotError):
            error = GenerationError(f"generation failed: {type(error).__name__}: {error}")
        self._outbox.post(job, outcome=error)
