"""The in-process backend: a transformers model served by one worker thread (DESIGN.md section 5).

The asyncio side only tokenizes, checks the prompt fits, queues a job and awaits
what the worker thread delivers; the event loop never waits on torch.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from hermes_bot.backend import (
    BackendStats,
    GenerationParams,
    GenerationRequest,
    GenerationResult,
)
from hermes_bot.config import ExecutorSettings, ModelSettings, Settings
from hermes_bot.errors import GenerationError, PromptTooLong
from hermes_bot.inference.jobs import Job
from hermes_bot.inference.metrics import Metrics
from hermes_bot.inference.worker import Worker
from hermes_bot.prompts import resolve_dialect

_log = logging.getLogger(__name__)

GrammarFactory = Callable[[Any], Any]


class TransformersBackend:
    """OpenHermes (or any causal LM) loaded with from_pretrained, batched continuously."""

    def __init__(
        self,
        model: ModelSettings,
        executor: ExecutorSettings,
        defaults: GenerationParams,
        grammar_factory: GrammarFactory | None = None,
    ) -> None:
        self._model_settings = model
        self._executor_settings = executor
        self._defaults = defaults
        self._grammar_factory = grammar_factory
        self._metrics = Metrics()
        self._worker: Worker | None = None
        self._tokenizer: Any = None
        self._device = "not loaded"
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, grammar_factory: GrammarFactory | None = None
    ) -> TransformersBackend:
        """A backend configured by ``settings``, with constrained decoding in its dialect."""
        if grammar_factory is None:
            from hermes_bot.inference.grammar import compiler_factory

            dialect = resolve_dialect(settings.model.dialect, settings.model.id)
            grammar_factory = compiler_factory(dialect)
        return cls(settings.model, settings.executor, settings.generation.params(), grammar_factory)

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def context_window(self) -> int:
        """Tokens the model attends to, prompt and completion together."""
        return self._model_settings.context_window

    @property
    def tokenizer(self) -> Any:
        """The loaded tokenizer (after start())."""
        if self._tokenizer is None:
            raise GenerationError("the model has not been started")
        return self._tokenizer

    @property
    def metrics(self) -> Metrics:
        """The executor's counters (prompt tokens served from the cache, preemptions, ...)."""
        return self._metrics

    async def start(self) -> None:
        """Load the model in the worker thread; ModelLoadError when it cannot be loaded."""
        async with self._lock:
            if self._worker is not None:
                return
            worker = Worker(
                self._model_settings, self._executor_settings, self._metrics, self._grammar_factory
            )
            serving = await asyncio.wrap_future(worker.start())
            # The worker thread decodes with its own tokenizer: a fast tokenizer shared
            # between threads can fail with "Already borrowed".
            self._tokenizer = self._tokenizer or copy.deepcopy(serving.tokenizer)
            self._worker = worker
            self._device = serving.device

    async def close(self) -> None:
        """Stop serving; requests in flight fail with ``cancelled: shutting down``."""
        await self._stop("shutting down")

    async def unload(self) -> None:
        """Free the model's memory (requests in flight fail with ``cancelled: model unloaded``).

        The memory is given back once the worker thread has exited and nothing holds the model.
        """
        await self._stop("model unloaded")

    async def reload(self) -> None:
        """Unload, then load the model again."""
        await self.unload()
        await self.start()

    async def _stop(self, reason: str) -> None:
        async with self._lock:
            worker, self._worker = self._worker, None
            if worker is None:
                return
            worker.stop(reason)
            await asyncio.to_thread(worker.join)
            self._device = "not loaded"
            _log.info("inference worker stopped (%s)", reason)

    # -- requests ------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in a prompt (special-token strings count as text)."""
        return len(
            self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        )

    def _params(self, request: GenerationRequest) -> GenerationParams:
        # A request that did not set its own parameters gets the configured defaults.
        return request.params or self._defaults

    def _submit(self, request: GenerationRequest, stream: bool) -> Job:
        worker = self._worker
        if worker is None:
            raise GenerationError(
                "the model is not loaded",
                user_message="The model is not running right now. Please try again later.",
            )
        params = self._params(request)
        ids = self.tokenizer(request.prompt, add_special_tokens=True)["input_ids"]
        room = self.context_window - params.max_new_tokens
        if len(ids) > room:
            raise PromptTooLong(
                f"prompt has {len(ids)} tokens but only {max(room, 0)} fit: context window "
                f"{self.context_window} minus max_new_tokens {params.max_new_tokens}"
            )
        timeout = request.timeout or self._executor_settings.request_timeout
        job = Job(
            prompt_ids=list(ids),
            params=params,
            loop=asyncio.get_running_loop(),
            deadline=time.monotonic() + timeout,
            stream=stream,
            constraint=request.constraint,
        )
        worker.submit(job)
        return job

    async def _next(self, job: Job) -> tuple[str, GenerationResult | None]:
        """The text posted since the last call (coalesced), and the result once finished."""
        while True:
            text, outcome = job.take()
            if isinstance(outcome, BaseException):
                raise outcome
            if text or outcome is not None:
                return text, outcome
            remaining = job.deadline - time.monotonic()
            try:
                await asyncio.wait_for(job.wake.wait(), max(remaining, 0))
            except TimeoutError:
                raise GenerationError(
                    f"generation timed out after {job.deadline - job.submitted:g}s",
                    user_message="That took too long. Please try again.",
                ) from None
            job.wake.clear()

    def _release(self, job: Job) -> None:
        if not job.done and self._worker is not None:
            self._worker.cancel(job)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """The whole completion; raises Busy, PromptTooLong or GenerationError."""
        job = self._submit(request, stream=False)
        try:
            while True:
                _, result = await self._next(job)
                if result is not None:
                    return result
        finally:
            self._release(job)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        """Text deltas as they are decoded; they join to the full completion text."""
        job = self._submit(request, stream=True)
        try:
            while True:
                text, result = await self._next(job)
                if text:
                    yield text
                if result is not None:
                    return
        finally:
            self._release(job)

    def stats(self) -> BackendStats:
        """Queue depth, running batch size, throughput and latency numbers."""
        worker = self._worker
        waiting, running = worker.depth() if worker else (0, 0)
        return self._metrics.backend_stats(
            self._model_settings.id,
            self._device,
            queue_depth=waiting,
            running=running,
            kv_cache_used=worker.kv_cache_used() if worker else None,
        )
