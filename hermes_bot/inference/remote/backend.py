"""The remote backend: the bot's ChatML prompts completed by OpenAI-compatible servers.

Requests go to ``/v1/completions`` (streamed), spread over the configured
servers by least outstanding requests. A request that fails before its first
token is retried on another server; one that fails mid-answer continues on
another server from the text so far (see ``failover.py`` for what each failure
means). Forced calls end the prompt with the opening call tag and constrain the
rest to the call's JSON schema where the engine takes one. No torch, no
transformers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import aiohttp

from hermes_bot.backend import (
    BackendStats,
    GenerationParams,
    GenerationRequest,
    GenerationResult,
)
from hermes_bot.config import RemoteSettings, Settings
from hermes_bot.errors import GenerationError
from hermes_bot.inference.metrics import Metrics
from hermes_bot.inference.remote.client import Finish, ServerFailure, Timeouts, complete
from hermes_bot.inference.remote.engines import context_from_models, engine
from hermes_bot.inference.remote.failover import all_failed, handle_failure, stopped_mid_answer
from hermes_bot.inference.remote.gbnf import call_tags
from hermes_bot.inference.remote.pool import Server, ServerPool
from hermes_bot.inference.remote.tokens import (
    FALLBACK_CHARS_PER_TOKEN,
    TokenCounter,
    calibrated_counter,
    estimating_counter,
    load_tokenizer_counter,
)

_log = logging.getLogger(__name__)


class Restart:
    """Marker: drop the text received so far, the answer starts over."""


RESTART = Restart()


class RemoteBackend:
    """Completes prompts on one or more OpenAI-compatible inference servers."""

    def __init__(
        self,
        remote: RemoteSettings,
        model_id: str,
        context_window: int,
        defaults: GenerationParams,
    ) -> None:
        if not remote.urls:
            raise ValueError("the remote backend needs at least one URL")
        self._settings = remote
        self._model = remote.model or model_id
        self._tokenizer_source = remote.tokenizer or model_id
        self._context_window = context_window
        self._defaults = defaults
        fixed = None if remote.engine == "auto" else engine(remote.engine)
        servers = [Server(url, fixed or engine("generic")) for url in remote.urls]
        self._pool = ServerPool(servers, detect_engine=fixed is None)
        self._headers = {"Accept": "text/event-stream"}
        if remote.api_key is not None:
            self._headers["Authorization"] = f"Bearer {remote.api_key.get_secret_value()}"
        self._metrics = Metrics()
        self._counter: TokenCounter | None = None
        self._session: aiohttp.ClientSession | None = None
        self._prober: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RemoteBackend:
        """A backend for ``settings.remote`` serving ``settings.model.id``."""
        return cls(
            settings.remote,
            settings.model.id,
            settings.model.context_window,
            settings.generation.params(),
        )

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def context_window(self) -> int:
        """Tokens per request: the configured window, or less where a server allows less."""
        return self._context_window

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in a prompt (exact with tokenizer files, else estimated)."""
        counter = self._counter or estimating_counter(FALLBACK_CHARS_PER_TOKEN)
        return counter(text)

    async def start(self) -> None:
        """Probe every server (engine, context length); servers that don't answer start down."""
        if self._session is not None:
            return
        self._session = aiohttp.ClientSession()
        await asyncio.gather(*(self._probe(server) for server in self._pool.servers))
        self._counter = load_tokenizer_counter(self._tokenizer_source)
        if self._counter is None:
            roots = [self._root(s) for s in self._pool.servers if s.up]
            self._counter = await calibrated_counter(
                self._session, roots, self._headers, self._settings.connect_timeout
            )
            if self._counter is None:
                _log.warning(
                    "no tokenizer files for %s and no /tokenize: prompt lengths are estimated; "
                    "set remote.tokenizer to a directory with tokenizer.model or tokenizer.json",
                    self._tokenizer_source,
                )
        up = [s.url for s in self._pool.servers if s.up]
        _log.info("remote backend: %d of %d servers up %s", len(up), len(self._pool.servers), up)
        self._prober = asyncio.create_task(self._probe_loop(), name="remote-probe")

    async def close(self) -> None:
        """Stop probing and close the connections (requests in flight fail)."""
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
            self._prober = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _root(self, server: Server) -> str:
        return server.url.removesuffix("/v1")

    async def _probe(self, server: Server) -> None:
        """Probe ``server``; adopt a shorter context length than configured if it reports one."""
        assert self._session is not None
        listing = await self._pool.probe(
            server, self._session, self._headers, self._settings.connect_timeout
        )
        limit = context_from_models(listing) if listing is not None else None
        if limit is not None and limit < self._context_window:
            _log.warning(
                "%s serves %d tokens per request; using that instead of model.context_window %d",
                server.url,
                limit,
                self._context_window,
            )
            self._context_window = limit

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.probe_interval)
            await asyncio.gather(*(self._probe(server) for server in self._pool.down()))

    # -- requests ------------------------------------------------------------------------

    async def _completion(
        self, request: GenerationRequest, *, restartable: bool
    ) -> AsyncIterator[str | Finish | Restart]:
        """Text deltas then a Finish, from the servers that take the request.

        A server that fails mid-answer is replaced: unconstrained text continues
        from where it stopped; a constrained answer starts over (``Restart``: drop
        what was received) when ``restartable``, else the request fails.
        """
        if self._session is None:
            raise GenerationError(
                "the remote backend has not been started",
                user_message="The model is not running right now. Please try again later.",
            )
        params = request.params or self._defaults
        constraint = request.constraint
        forced = constraint is not None and constraint.mode == "forced"
        opening, closing, _ = call_tags(constraint.dialect) if forced else ("", "", "")
        timeouts = Timeouts(
            self._settings.connect_timeout,
            self._settings.read_timeout,
            request.timeout or self._settings.request_timeout,
        )
        tried: set[str] = set()
        kinds: list[str] = []  # why each server tried could not answer
        last = "no server is up"
        text = ""  # what the servers have written so far, the opening tag not included
        while (server := self._pool.pick(tried)) is not None:
            tried.add(server.url)
            constrained = server.engine.constrains(constraint) and not server.plain
            remaining = params.max_new_tokens - (self.count_tokens(text) if text else 0)
            body = server.engine.body(
                self._model,
                request.prompt + opening + text,
                params.with_overrides(max_new_tokens=max(remaining, 1)),
                constraint,
                plain=server.plain,
            )
            server.outstanding += 1
            try:
                async for item in complete(
                    self._session, f"{server.url}/completions", body, self._headers, timeouts
                ):
                    if not text and opening:
                        yield opening
                    if isinstance(item, Finish):
                        if constrained and item.reason == "stop" and closing.strip() not in text:
                            yield closing
                        server.completed += 1
                        yield item
                        return
                    if constrained and forced:
                        # Bytes that are not UTF-8 (byte-fallback tokens) pass a GBNF grammar
                        # as one character and arrive as one U+FFFD each: drop them, so
                        # string lengths stay within what the grammar allowed.
                        item = item.replace("\ufffd", "")
                    text += item
                    yield item
            except ServerFailure as failure:
                last = f"{server.url}: {failure}"
                handle_failure(self._pool, server, failure, body, tried)
                if text and constraint is not None and constraint.mode != "off":
                    if not restartable:
                        raise stopped_mid_answer(last) from None
                    text = ""
                    yield RESTART
                kinds.append(failure.kind)
            finally:
                server.outstanding -= 1
        if text:
            raise stopped_mid_answer(last)
        # No server tried: all were down already; say why they went down.
        raise all_failed(kinds or [s.last_failure for s in self._pool.down()], last)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        """Text deltas of the completion as the server sends them."""
        started = time.monotonic()
        first = True
        try:
            async for item in self._completion(request, restartable=False):
                if isinstance(item, Finish):
                    self._metrics.tokens(item.completion_tokens or 0)
                    continue
                if first:
                    first = False
                    self._metrics.first_token(time.monotonic() - started)
                yield item
        except BaseException:
            self._metrics.finished(None)
            raise
        self._metrics.finished(time.monotonic() - started)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """The whole completion."""
        started = time.monotonic()
        parts: list[str] = []
        finish = Finish("stop")
        try:
            async for item in self._completion(request, restartable=True):
                if isinstance(item, Finish):
                    finish = item
                elif isinstance(item, Restart):
                    parts.clear()
                else:
                    parts.append(item)
        except BaseException:
            self._metrics.finished(None)
            raise
        self._metrics.tokens(finish.completion_tokens or 0)
        self._metrics.finished(time.monotonic() - started)
        text = "".join(parts)
        return GenerationResult(
            text=text,
            prompt_tokens=finish.prompt_tokens or self.count_tokens(request.prompt),
            completion_tokens=finish.completion_tokens or self.count_tokens(text),
            finish_reason=finish.reason,
        )

    def stats(self) -> BackendStats:
        """Requests in flight, latency numbers and each server's state."""
        servers = self._pool.statuses()
        up = sum(status.state == "up" for status in servers)
        return self._metrics.backend_stats(
            self._model,
            f"remote: {up} of {len(servers)} servers up",
            running=sum(status.in_flight for status in servers),
            servers=servers,
        )
