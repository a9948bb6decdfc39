"""One completion request to one server: the HTTP call and its server-sent events.

Servers differ at the end of a stream (``data: [DONE]`` or just the end of
the body), in whether the stop string stays in the text, and in how they say
no (status codes, ``{"error": …}`` bodies or events). This module hides
that: callers get text deltas and one :class:`Finish`, or a
:class:`ServerFailure` that says whether another server could take the
request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from hermes_bot.backend import FinishReason
from hermes_bot.call_format import STOP_TOKENS

_log = logging.getLogger(__name__)

FailureKind = Literal["down", "busy", "rejected", "unknown_fields", "too_long", "auth", "model"]
_TOO_LONG = ("context length", "context size", "context window", "too long", "maximum context")
_LONGEST_STOP = max(len(stop) for stop in STOP_TOKENS)


class ServerFailure(Exception):
    """A server did not complete a request; ``kind`` says what another try could do."""

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


@dataclass(frozen=True)
class Finish:
    """How a completion ended."""

    reason: FinishReason
    completion_tokens: int | None = None
    prompt_tokens: int | None = None


@dataclass(frozen=True)
class Timeouts:
    """Seconds to connect, to wait for any one chunk (the first included), and in all."""

    connect: float
    read: float
    total: float


def _classify(status: int, body: str) -> ServerFailure:
    detail = f"HTTP {status}: {body[:300]}"
    lowered = body.lower()
    if status in (401, 403):
        return ServerFailure("auth", detail)
    if status == 404 and "model" in lowered:
        return ServerFailure("model", detail)
    if status in (400, 413, 422) and any(words in lowered for words in _TOO_LONG):
        return ServerFailure("too_long", detail)
    if status in (400, 422) and any(
        w in lowered
        for w in ("unexpected field", "extra", "unknown", "not permitted", "unrecognized")
    ):
        return ServerFailure("unknown_fields", detail)
    if status in (429, 503):
        return ServerFailure("busy", detail)
    if status >= 500 or status == 404:
        return ServerFailure("down", detail)
    return ServerFailure("rejected", detail)


def _event_data(event: list[str]) -> str | None:
    lines = [line[5:].removeprefix(" ") for line in event if line.startswith("data:")]
    return "\n".join(lines) if lines else None


def _read_chunk(data: str) -> tuple[str, str | None, dict[str, Any] | None]:
    """The text, finish reason and usage in one streamed (or whole) completion object."""
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError:
        raise ServerFailure("down", f"unreadable event: {data[:200]!r}") from None
    if not isinstance(chunk, dict):
        raise ServerFailure("down", f"unexpected event: {data[:200]!r}")
    if "error" in chunk:
        error = chunk["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise ServerFailure("down", f"server error event: {str(message)[:300]}")
    choices = chunk.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    text = choice.get("text") or ""
    return str(text), choice.get("finish_reason"), chunk.get("usage")


class _StopCutter:
    """Cuts the text at the first stop string, holding back what may be the start of one."""

    def __init__(self) -> None:
        self.text = ""
        self.sent = 0
        self.stopped = False

    def feed(self, delta: str) -> str:
        """Add ``delta``; returns the text now safe to pass on."""
        self.text += delta
        cut = min((i for i in (self.text.find(s) for s in STOP_TOKENS) if i >= 0), default=-1)
        if cut >= 0:
            self.text, self.stopped = self.text[:cut], True
            end = cut
        else:
            end = len(self.text)
            for size in range(min(_LONGEST_STOP - 1, len(self.text)), 0, -1):
                if any(stop.startswith(self.text[-size:]) for stop in STOP_TOKENS):
                    end -= size
                    break
        out, self.sent = self.text[self.sent : end], max(self.sent, end)
        return out

    def flush(self) -> str:
        """The text held back, at the end of the stream."""
        out, self.sent = self.text[self.sent :], len(self.text)
        return out


@contextlib.asynccontextmanager
async def _post(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    timeout: aiohttp.ClientTimeout,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """POST through the session's pool, or on a new connection if a pooled one was closed.

    Some servers (llama.cpp) close the connection after each streamed response
    although they offered to keep it alive; the pool only finds out on reuse.
    """
    try:
        response = await session.post(url, json=body, headers=headers, timeout=timeout)
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
        _log.debug("a kept-alive connection to %s was closed; using a new one", url)
        async with aiohttp.request(
            "POST", url, json=body, headers=headers, timeout=timeout
        ) as response:
            yield response
        return
    async with response:
        yield response


async def complete(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    timeouts: Timeouts,
) -> AsyncIterator[str | Finish]:
    """POST ``body`` (streaming) to ``url``: text deltas, then one Finish; or ServerFailure."""
    timeout = aiohttp.ClientTimeout(
        total=timeouts.total, sock_connect=timeouts.connect, sock_read=timeouts.read
    )
    cutter = _StopCutter()
    finish: str | None = None
    usage: dict[str, Any] | None = None
    try:
        async with _post(session, url, body, headers, timeout) as response:
            if response.status != 200:
                raise _classify(response.status, await response.text(errors="replace"))
            event: list[str] = []
            done = False
            async for raw in response.content:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if line:
                    event.append(line)
                    continue
                data, event = _event_data(event), []
                if data is None:
                    continue
                if data.strip() == "[DONE]":
                    done = True
                    break
                text, reason, chunk_usage = _read_chunk(data)
                usage = chunk_usage or usage
                finish = reason or finish
                delta = cutter.feed(text)
                if delta:
                    yield delta
                if cutter.stopped:  # a server that ignores stop strings is not waited for
                    finish = "stop"
                    break
            if not done and finish is None and (data := _event_data(event)) is not None:
                _, finish, usage = _read_chunk(data)  # a last event without its blank line
    except TimeoutError:
        raise ServerFailure("down", f"no answer within the timeout from {url}") from None
    except (aiohttp.ClientError, ConnectionError) as error:
        raise ServerFailure("down", f"{type(error).__name__}: {error}") from None
    except asyncio.IncompleteReadError as error:
        raise ServerFailure("down", f"stream cut off: {error}") from None
    if finish is None and not done:
        raise ServerFailure("down", "the stream ended before the completion finished")
    rest = cutter.flush()
    if rest:
        yield rest
    usage = usage or {}
    yield Finish(
        "length" if finish == "length" else "stop",
        usage.get("completion_tokens"),
        usage.get("prompt_tokens"),
    )


async def get_json(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], timeout: float
) -> Any:
    """GET ``url`` as JSON; ServerFailure when it cannot be had."""
    try:
        async with session.get(
            url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            if response.status != 200:
                raise _classify(response.status, await response.text(errors="replace"))
            return await response.json(content_type=None)
    except TimeoutError:
        raise ServerFailure("down", f"no answer within {timeout:g}s from {url}") from None
    except (aiohttp.ClientError, ConnectionError, json.JSONDecodeError, ValueError) as error:
        raise ServerFailure("down", f"{type(error).__name__}: {error}") from None
