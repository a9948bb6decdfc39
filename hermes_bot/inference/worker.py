"""The worker thread that owns the model: loading, the bounded queue, the serving loop.

The asyncio side submits jobs (Busy when the queue is full) and cancels them;
the thread waits for work, asks the :class:`Scheduler` which requests join and
lets the :class:`ModelRunner` run one step at a time. On stop, every queued or
running job fails with ``cancelled: <reason>`` and the thread lets go of the
model; whoever joins the thread then frees its memory.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from hermes_bot.config import ExecutorSettings, ModelSettings
from hermes_bot.errors import Busy, GenerationError, HermesBotError, ModelLoadError
from hermes_bot.inference.jobs import Job, Outbox
from hermes_bot.inference.loading import free_memory, load
from hermes_bot.inference.metrics import Metrics
from hermes_bot.inference.output import RowOutput
from hermes_bot.inference.runner import ModelRunner
from hermes_bot.inference.scheduler import Scheduler

_log = logging.getLogger(__name__)

# At most one metrics line in the log per this many seconds, written when the queue drains.
SUMMARY_INTERVAL = 60.0


@dataclass(frozen=True)
class Serving:
    """What the event loop learns once the model is loaded."""

    tokenizer: Any
    device: str


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
        self._scheduler = Scheduler(executor.max_batch_size)
        self._stopping: str | None = None
        self._outbox = Outbox()
        self._runner: ModelRunner | None = None
        self._output: RowOutput | None = None
        self._thread: threading.Thread | None = None
        self._last_summary: float | None = None

    # -- called from the event loop ------------------------------------------------------

    def start(self) -> concurrent.futures.Future[Serving]:
        """Start the thread; the future resolves once the model is loaded."""
        ready: concurrent.futures.Future[Serving] = concurrent.futures.Future()
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
                    queue_position=waiting + self._runner.running,
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
        """Wait for the thread to exit, then give the model's memory back."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        free_memory(None)

    def depth(self) -> tuple[int, int]:
        """(waiting, running) job counts."""
        runner = self._runner
        return len(self._inbox), runner.running if runner is not None else 0

    def kv_cache_used(self) -> float | None:
        """Share of the KV cache's blocks in use (by requests or the prefix cache)."""
        runner = self._runner
        return runner.cache.used if runner is not None else None

    # -- the worker thread ---------------------------------------------------------------

    def _run(self, ready: concurrent.futures.Future[Serving]) -> None:
        try:
            runner = self._load()
        except HermesBotError as error:
            ready.set_exception(error)
            return
        except Exception as error:  # anything else from loading is still a load failure
            _log.exception("loading %s failed", self._model_settings.id)
            ready.set_exception(ModelLoadError(f"loading {self._model_settings.id!r}: {error}"))
            return
        with self._cond:
            self._runner = runner
        ready.set_result(Serving(runner.loaded.tokenizer, str(runner.loaded.device)))
        try:
            with torch.inference_mode():
                while self._serve_once(runner):
                    pass
        finally:
            self._shutdown(runner)

    def _load(self) -> ModelRunner:
        loaded = load(self._model_settings)
        self._output = output = RowOutput(loaded, self._metrics, self._outbox)
        compiler = None
        if self._grammar_factory is not None:
            compiler = self._grammar_factory(loaded.tokenizer)
        return ModelRunner(
            loaded,
            self._settings,
            self._model_settings.context_window,
            compiler,
            self._metrics,
            output,
            self._fault,
            self._requeue,
        )

    def _shutdown(self, runner: ModelRunner) -> None:
        error = GenerationError(f"cancelled: {self._stopping or 'worker stopped'}")
        with self._cond:
            queued = list(self._inbox)
            self._inbox.clear()
            self._runner = None
        runner.fail_all(error)
        assert self._output is not None  # set when the model loaded
        for job in queued:
            self._output.fail(job, error)
        self._outbox.flush()
        self._output = None  # nothing of the worker's may hold the model once it is joined

    def _fault(self, jobs: list[Job], error: BaseException, involved: int) -> None:
        """A forward pass over ``involved`` rows raised for ``jobs``: retry or fail them."""
        out_of_memory = isinstance(error, torch.cuda.OutOfMemoryError)
        if out_of_memory:
            free_memory(self._runner.loaded.device if self._runner else None)
        with self._cond:
            retry, failed = self._scheduler.after_fault(jobs, error, involved)
            self._requeue(retry)
        if not failed:
            return
        _log.error("generation failed for %d requests", len(failed), exc_info=error)
        message = "out of GPU memory" if out_of_memory else f"{type(error).__name__}: {error}"
        assert self._output is not None  # set when the model loaded
        for job in failed:
            self._output.fail(job, GenerationError(f"generation failed: {message}"))

    def _requeue(self, jobs: list[Job]) -> None:
        """Put ``jobs`` back at the front of the queue, in order (preempted, waiting for a
        shared prompt, or retried after running out of memory)."""
        with self._cond:
            self._inbox.extendleft(reversed(jobs))

    def _serve_once(self, runner: ModelRunner) -> bool:
        new = self._wait_for_work(runner)
        if new is None:
            return False
        try:
            runner.step(new)
        except Exception as error:  # a bug in a step: its requests fail, serving goes on
            _log.exception("an inference step failed")
            failure = GenerationError(f"generation failed: {type(error).__name__}: {error}")
            assert self._output is not None  # set when the model loaded
            for job in runner.jobs() + new:
                self._output.fail(job, failure)
            runner.fail_all(failure)
        finally:
            self._outbox.flush()
        self._log_summary_when_idle(runner)
        return True

    def _log_summary_when_idle(self, runner: ModelRunner) -> None:
        now = time.monotonic()
        if runner.running or self._inbox:
            return
        if self._last_summary is not None and now - self._last_summary < SUMMARY_INTERVAL:
            return
        self._last_summary = now
        numbers = self._metrics.snapshot()
        cached = numbers.cached_prompt_tokens / max(1, numbers.prompt_tokens)
        _log.info(
            "inference: %.1f tokens/s, ttft %.0f ms, latency p50 %.0f ms p95 %.0f ms; "
            "%d completed, %d failed, %d turned away; %.0f%% of prompt tokens from the cache; "
            "%d paused for KV cache room",
            numbers.tokens_per_second,
            numbers.time_to_first_token_ms,
            numbers.latency_p50_ms,
            numbers.latency_p95_ms,
            numbers.completed,
            numbers.failed,
            numbers.rejected,
            100 * cached,
            numbers.preempted,
        )

    def _wait_for_work(self, runner: ModelRunner) -> list[Job] | None:
        """Jobs to admit now ([] to just keep running); None to stop."""
        with self._cond:
            while not self._inbox and not runner.running and not self._stopping:
                self._cond.wait()
            if not runner.running:
                # Requests that arrive together are prefilled together.
                end = time.monotonic() + self._settings.batch_wait_ms / 1000
                while self._scheduler.wants_more(self._inbox) and not self._stopping:
                    remaining = end - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            if self._stopping:
                return None
            return self._scheduler.admit(self._inbox, runner.running, runner.joining)
