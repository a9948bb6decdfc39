"""A scripted stand-in for a model backend: behaviour tests decide what the model "writes"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable

from hermes_bot.backend import (
    BackendStats,
    GenerationRequest,
    GenerationResult,
)

Script = Callable[[GenerationRequest], str]


class ScriptedBackend:
    """Answers each request with the next scripted completion (or ``script(request)``).

    ``requests`` records every request it was given; ``delay`` slows each answer;
    ``chunk`` sets the size of streamed deltas.
    """

    def __init__(
        self,
        completions: Iterable[str] | Script = (),
        *,
        delay: float = 0.0,
        chunk: int = 7,
        context_window: int = 4096,
    ) -> None:
        self._script: Script | None = completions if callable(completions) else None
        self._queue = [] if callable(completions) else list(completions)
        self.requests: list[GenerationRequest] = []
        self.delay = delay
        self.chunk = chunk
        self._context_window = context_window
        self.started = False
        self.closed = False

    def add(self, *completions: str) -> None:
        self._queue.extend(completions)

    @property
    def context_window(self) -> int:
        return self._context_window

    def count_tokens(self, text: str) -> int:
        # Roughly four characters a token, like English text through SentencePiece.
        return len(text) // 4 + 1

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    def _next(self, request: GenerationRequest) -> str:
        self.requests.append(request)
        if self._script is not None:
            return self._script(request)
        if not self._queue:
            raise AssertionError("ScriptedBackend ran out of scripted completions")
        return self._queue.pop(0)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        text = self._next(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        return GenerationResult(
            text=text,
            prompt_tokens=self.count_tokens(request.prompt),
            completion_tokens=self.count_tokens(text),
            finish_reason="stop",
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        text = self._next(request)
        for start in range(0, len(text), self.chunk):
            if self.delay:
                await asyncio.sleep(self.delay / max(1, len(text) // self.chunk))
            else:
                await asyncio.sleep(0)
            yield text[start : start + self.chunk]

    def stats(self) -> BackendStats:
        return BackendStats(model="scripted", device="none", completed=len(self.requests))


class Screen:
    """What a streamed answer showed, in order: pass it as ``on_text``."""

    def __init__(self) -> None:
        self.shown: list[str] = []

    async def __call__(self, text: str) -> None:
        self.shown.append(text)
