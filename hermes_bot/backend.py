"""The Backend protocol and the value types that cross it (no torch here)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

ConstraintMode = Literal["off", "auto", "forced"]
Dialect = Literal["functioncall", "tool_call"]
FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class GenerationParams:
    """Sampling parameters; config gives the defaults, a request may override."""

    max_new_tokens: int = 512
    do_sample: bool = True
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 50
    repetition_penalty: float = 1.0

    def with_overrides(self, **overrides: object) -> GenerationParams:
        """A copy with the given fields replaced (None values are ignored)."""
        return dataclasses.replace(
            self, **{key: value for key, value in overrides.items() if value is not None}
        )


@dataclass(frozen=True)
class Constraint:
    """Constrained decoding for one request (DESIGN.md section 6).

    ``forced``: the output is exactly one schema-valid call of one of ``tools``
    (all tools when empty). ``auto``: plain text, or schema-valid calls.
    """

    mode: ConstraintMode = "off"
    dialect: Dialect = "functioncall"
    tools: tuple[str, ...] = ()


@dataclass
class GenerationRequest:
    """One prompt to complete. ``prompt`` is the fully rendered ChatML text.

    ``params`` None means the backend's configured defaults.
    """

    prompt: str
    params: GenerationParams | None = None
    constraint: Constraint | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class GenerationResult:
    """A finished completion, stop strings removed."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason


@dataclass(frozen=True)
class ServerStatus:
    """One inference server behind a remote backend, for /status."""

    url: str
    state: Literal["up", "down"]
    engine: str
    in_flight: int = 0
    completed: int = 0
    failed: int = 0
    last_error: str = ""


@dataclass(frozen=True)
class BackendStats:
    """Numbers for /status and the logs."""

    model: str
    device: str
    queue_depth: int = 0
    running: int = 0
    tokens_per_second: float = 0.0
    time_to_first_token_ms: float = 0.0
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    completed: int = 0
    failed: int = 0
    rejected: int = 0
    generated_tokens: int = 0
    servers: tuple[ServerStatus, ...] = ()
    kv_cache_used: float | None = None  # share of the in-process KV cache's blocks in use
    preempted: int = 0  # requests paused because the KV cache was full


@runtime_checkable
class Backend(Protocol):
    """What the pipeline needs from a model, wherever it runs."""

    @property
    def context_window(self) -> int:
        """Tokens the model can attend to, prompt and completion together."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in a prompt (special-token strings count as text)."""
        ...

    async def start(self) -> None:
        """Load the model and start serving; idempotent."""
        ...

    async def close(self) -> None:
        """Stop serving; in-flight requests finish with a cancellation error."""
        ...

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """The whole completion; raises Busy, PromptTooLong or GenerationError."""
        ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        """Text deltas of the completion as they are decoded."""
        ...

    def stats(self) -> BackendStats:
        """Current metrics."""
        ...
