"""The running batch: which requests decode together, and what happens after each step.

Between decode steps, finished, cancelled and timed-out rows leave the batch and
waiting requests join it (their prompts are prefilled together and their cache
merged in). An exception fails only the rows of the forward pass it came from;
out-of-memory hands those rows back for a retry in smaller batches (they resume
from prompt + tokens so far) and fails a request only when it ran alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import torch

from hermes_bot.backend import FinishReason, GenerationResult
from hermes_bot.errors import GenerationError, HermesBotError
from hermes_bot.inference.batch import BatchState, decode_step, keep_rows, merge, prefill
from hermes_bot.inference.detokenize import TextDecoder, decode
from hermes_bot.inference.jobs import Job, Outbox
from hermes_bot.inference.loading import LoadedModel, free_memory
from hermes_bot.inference.metrics import Metrics
from hermes_bot.inference.sampling import RowParams, apply_repetition_penalty, select_tokens

_log = logging.getLogger(__name__)

_MAX_OOM_RETRIES = 8

Requeue = Callable[[list[Job], int], None]


class BatchRunner:
    """Owns the batch's rows and KV cache; only the worker thread calls it.

    ``requeue(jobs, limit)`` puts jobs back at the front of the queue and caps the
    batch size at ``limit`` (out-of-memory retries).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        compiler: Any,
        metrics: Metrics,
        outbox: Outbox,
        requeue: Requeue,
    ) -> None:
        self.loaded = loaded
        self._compiler = compiler
        self._metrics = metrics
        self._outbox = outbox
        self._requeue = requeue
        self.rows: list[Job] = []
        self._state: BatchState | None = None

    def step(self, new: list[Job]) -> None:
        """Drop finished rows, run one decode step, then admit ``new``."""
        self._drop_cancelled()
        if self.rows:
            self._decode()
        if new:
            self._admit(new)

    def fail_all(self, error: HermesBotError) -> None:
        """Fail every running row with ``error`` and drop the cache."""
        rows, self.rows, self._state = self.rows, [], None
        for job in rows:
            self.fail(job, error)

    def _drop_cancelled(self) -> None:
        now = time.monotonic()
        keep = []
        for index, job in enumerate(self.rows):
            if job.cancelled:
                job.done = True
            elif now > job.deadline:
                self.fail(job, GenerationError("timed out waiting for the model"))
            else:
                keep.append(index)
        if len(keep) < len(self.rows):
            self._keep(keep)

    def _keep(self, indices: list[int]) -> None:
        assert self._state is not None
        if len(indices) == len(self.rows):
            return
        self._state = keep_rows(self._state, indices)
        self.rows = [self.rows[i] for i in indices]

    def _decode(self) -> None:
        assert self._state is not None
        rows = self.rows
        try:
            tokens = self._select(decode_step(self.loaded.model, self._state), rows)
        except Exception as error:
            self.rows, self._state = [], None
            self._fault(rows, error, involved=len(rows))
            return
        self._state.last = torch.tensor(tokens, device=self._state.last.device)
        self._keep(
            [
                i
                for i, (job, token) in enumerate(zip(rows, tokens, strict=True))
                if self._advance(job, token)
            ]
        )

    def _admit(self, jobs: list[Job]) -> None:
        loaded = self.loaded
        ready = []
        for job in jobs:
            if job.cancelled:
                continue
            try:
                self._attach_matcher(job)
            except Exception as error:
                self.fail(job, error)
                continue
            ready.append(job)
        if not ready:
            return
        try:
            part, logits = prefill(
                loaded.model,
                [j.prompt_ids + j.generated for j in ready],
                loaded.pad_id,
                loaded.device,
            )
            tokens = self._select(logits, ready)
        except Exception as error:
            self._fault(ready, error, involved=len(ready) + len(self.rows))
            return
        part.last = torch.tensor(tokens, device=part.last.device)
        keep = [
            i
            for i, (job, token) in enumerate(zip(ready, tokens, strict=True))
            if self._advance(job, token)
        ]
        part_kept = keep_rows(part, keep)
        if part_kept is not None:
            self._state = merge(self._state, part_kept)
            self.rows = [*self.rows, *(ready[i] for i in keep)]

    def _attach_matcher(self, job: Job) -> None:
        if job.matcher is not None or job.constraint is None or job.constraint.mode == "off":
            return
        if self._compiler is None:
            _log.warning("constrained decoding requested but no grammar is configured; ignoring")
            return
        job.matcher = self._compiler.matcher(job.constraint)

    def _select(self, logits: torch.Tensor, jobs: list[Job]) -> list[int]:
        logits = logits.float()
        penalties = [job.params.repetition_penalty for job in jobs]
        if any(value != 1.0 for value in penalties):
            seen = [job.prompt_ids + job.generated for job in jobs]
            apply_repetition_penalty(logits, penalties, seen)
        matchers = [job.matcher for job in jobs]
        if any(matcher is not None for matcher in matchers):
            self._compiler.fill_masks(logits, matchers)
        params = [job.params for job in jobs]
        if all(RowParams.is_greedy(p) for p in params):
            return logits.argmax(dim=-1).tolist()
        return select_tokens(logits, RowParams.build(params, logits.device)).tolist()

    def _advance(self, job: Job, token: int) -> bool:
        """Record ``token`` for ``job``; False when the job has finished (or failed)."""
        now = time.monotonic()
        if job.first_token_at is None:
            job.first_token_at = now
            self._metrics.first_token(now - job.submitted)
        finish: FinishReason | None = None
        if token in self.loaded.stop_ids:
            finish = "stop"
        else:
            job.generated.append(token)
            self._metrics.tokens(1)
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
            job.decoder = job.decoder or TextDecoder(self.loaded.tokenizer)
            delta = job.decoder.delta(job.generated, final=finish is not None)
            if delta:
                self._outbox.emit(job, "delta", delta)
        if finish is None:
            return True
        text = job.decoder.sent if job.decoder else decode(self.loaded.tokenizer, job.generated)
        job.done = True
        self._metrics.finished(now - job.submitted)
        self._outbox.emit(
            job,
            "done",
            GenerationResult(
                text=text,
                prompt_tokens=len(job.prompt_ids),
                completion_tokens=len(job.generated),
                finish_reason=finish,
            ),
        )
        return False

    def fail(self, job: Job, error: BaseException) -> None:
        """Deliver ``error`` to ``job`` (once)."""
        if job.done:
            return
        job.done = True
        self._metrics.finished(None)
        if not isinstance(error, HermesBotError):
            error = GenerationError(f"generation failed: {type(error).__name__}: {error}")
        self._outbox.emit(job, "error", error)

    def _fault(self, jobs: list[Job], error: Exception, *, involved: int) -> None:
        """A forward pass over ``jobs`` raised; retry smaller on OOM, else fail them."""
        out_of_memory = isinstance(error, torch.cuda.OutOfMemoryError)
        if out_of_memory:
            free_memory(self.loaded.device)
        retry = [j for j in jobs if not j.cancelled and j.oom_retries < _MAX_OOM_RETRIES]
        if out_of_memory and involved > 1 and retry:
            limit = max(1, involved // 2)
            _log.warning(
                "out of memory with %d rows; retrying %d requests, batch limit %d",
                involved,
                len(retry),
                limit,
            )
            for job in retry:
                job.oom_retries += 1
            self._requeue(retry, limit)
            jobs = [job for job in jobs if job not in retry]
            if not jobs:
                return
        _log.error("generation failed for %d requests", len(jobs), exc_info=error)
        message = "out of GPU memory" if out_of_memory else f"{type(error).__name__}: {error}"
        for job in jobs:
            self.fail(job, GenerationError(f"generation failed: {message}"))
