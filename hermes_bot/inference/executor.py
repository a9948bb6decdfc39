"""The worker thread that owns the model: loading, the bounded queue, the serving loop.

The asyncio side submits jobs (Busy when the queue is full) and cancels them; the
thread waits for work, gathers requests that arrive together and lets the
BatchRunner decode. On stop, every queued or running job fails with
``cancelled: <reason>``.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import torch

from hermes_bot.config import ExecutorSettings, ModelSettings
from hermes_bot.errors import Busy, GenerationError, HermesBotError, ModelLoadError
from hermes_bot.inference.jobs import Job, Outbox
from hermes_bot.inference.loading import LoadedModel, free_memory, load
from hermes_bot.inference.metrics import Metrics
from hermes_bot.inference.scheduler import BatchRunner

_log = logging.getLogger(__name__)

# At most one metrics line in the log per this many seconds, written when the queue drains.
SUMMARY_INTERVAL = 60.0


class Worker:
    """Loads the model in its own thread and serves jobs until stopped."""

    def __init__(
        self,
        model: ModelSettings,
        executor: ExecutorSettings,
        metrics: Metrics,
        grammar_factory: Callable[[Any], Any] | None = None,
    ) -> None:
        self._model_settings = model
        self._settings = executor
        self._metrics = metrics
        self._grammar_factory = grammar_factory
        self._cond = threading.Condition()
        self._inbox: deque[Job] = deque()
        self._limit = executor.max_batch_size
        self._stopping: str | None = None
        self._outbox = Outbox()
        self._runner: BatchRunner | None = None
        self._thread: threading.Thread | None = None
        self._last_summary = 0.0

    @property
    def loaded(self) -> LoadedModel | None:
        """The model while the thread serves, else None."""
        runner = self._runner
        return runner.loaded if runner is not None else None

    # -- called from the event loop ------------------------------------------------------

    def start(self) -> concurrent.futures.Future[LoadedModel]:
        """Start the thread; the future resolves once the model is loaded."""
        ready: concurrent.futures.Future[LoadedModel] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="hermes-inference", daemon=True
        )
        self._thread.start()
        return ready

    def submit(self, job: Job) -> None:
        """Queue ``job``; Busy when the queue is full, GenerationError when not serving."""
        with self._cond:
            if self._stopping or self._runner is None:
                raise GenerationError(
                    f"the model is not serving ({self._stopping or 'not started'})",
                    user_message="The model is not running right now. Please try again later.",
                )
            waiting = len(self._inbox)
            if waiting >= self._settings.queue_size:
                self._metrics.reject()
                raise Busy(
                    f"inference queue full ({waiting} waiting)",
                    queue_position=waiting + len(self._runner.rows),
                )
            self._inbox.append(job)
            self._cond.notify()

    def cancel(self, job: Job) -> None:
        """Stop working on ``job`` (its awaiting side has gone)."""
        with self._cond:
            job.cancelled = True
            if job in self._inbox:
                self._inbox.remove(job)

    def stop(self, reason: str) -> None:
        """Ask the thread to fail every job with ``cancelled: reason`` and exit."""
        with self._cond:
            self._stopping = self._stopping or reason
            self._cond.notify()

    def join(self) -> None:
        """Wait for the thread to exit."""
        if self._thread is not None:
            self._thread.join()

    def depth(self) -> tuple[int, int]:
        """(waiting, running) job counts."""
        runner = self._runner
        return len(self._inbox), len(runner.rows) if runner is not None else 0

    # -- the worker thread ---------------------------------------------------------------

    def _run(self, ready: concurrent.futures.Future[LoadedModel]) -> None:
        try:
            loaded = load(self._model_settings)
            compiler = None
            if self._grammar_factory is not None:
                compiler = self._grammar_factory(loaded.tokenizer)
        except HermesBotError as error:
            ready.set_exception(error)
            return
        except Exception as error:  # anything else from loading is still a load failure
            _log.exception("loading %s failed", self._model_settings.id)
            ready.set_exception(ModelLoadError(f"loading {self._model_settings.id!r}: {error}"))
            return
        runner = BatchRunner(loaded, compiler, self._metrics, self._outbox, self._requeue)
        with self._cond:
            self._runner = runner
        ready.set_result(loaded)
        try:
            while self._serve_once(runner):
                pass
        finally:
            self._shutdown(runner)

    def _shutdown(self, runner: BatchRunner) -> None:
        error = GenerationError(f"cancelled: {self._stopping or 'worker stopped'}")
        with self._cond:
            queued = list(self._inbox)
            self._inbox.clear()
            self._runner = None
        runner.fail_all(error)
        for job in queued:
            runner.fail(job, error)
        self._outbox.flush()
        del runner
        free_memory(None)

    def _requeue(self, jobs: list[Job], limit: int) -> None:
        with self._cond:
            self._limit = limit
            self._inbox.extendleft(reversed(jobs))

    @torch.inference_mode()
    def _serve_once(self, runner: BatchRunner) -> bool:
        new = self._wait_for_work(runner)
        if new is None:
            return False
        try:
            runner.step(new)
        finally:
            self._outbox.flush()
        self._log_summary_when_idle(runner)
        return True

    def _log_summary_when_idle(self, runner: BatchRunner) -> None:
        now = time.monotonic()
        if runner.rows or self._inbox or now - self._last_summary < SUMMARY_INTERVAL:
            return
        self._last_summary = now
        numbers = self._metrics.snapshot()
        _log.info(
            "inference: %.1f tokens/s, ttft %.0f ms, latency p50 %.0f ms p95 %.0f ms; "
            "%d completed, %d failed, %d turned away",
            numbers.tokens_per_second,
            numbers.time_to_first_token_ms,
            numbers.latency_p50_ms,
            numbers.latency_p95_ms,
            numbers.completed,
            numbers.failed,
            numbers.rejected,
        )

    def _wait_for_work(self, runner: BatchRunner) -> list[Job] | None:
        """Jobs to admit now ([] to just keep decoding); None to stop."""
        with self._cond:
            while not self._inbox and not runner.rows and not self._stopping:
                self._cond.wait()
            if not runner.rows:
                if not any(job.oom_retries for job in self._inbox):
                    self._limit = self._settings.max_batch_size
                # Requests that arrive together are prefilled together.
                end = time.monotonic() + self._settings.batch_wait_ms / 1000
                while len(self._inbox) < self._limit and not self._stopping:
                    remaining = end - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            if self._stopping:
                return None
            new: list[Job] = []
            while self._inbox and len(runner.rows) + len(new) < self._limit:
                new.append(self._inbox.popleft())
            return new
