"""The inference servers behind ``remote.urls``: who is up, who is least loaded.

A request goes to the server in rotation with the fewest requests in flight.
A server that fails or times out leaves the rotation; a probe brings it back
once it answers ``/models`` again. A probe also tells which engine a server
runs, when the configuration leaves that to ``auto``.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from hermes_bot.backend import ServerStatus
from hermes_bot.inference.remote.client import ServerFailure, get_json
from hermes_bot.inference.remote.engines import Engine, engine, engine_from_models

_log = logging.getLogger(__name__)


@dataclass
class Server:
    """One base URL and what the bot knows about it."""

    url: str
    engine: Engine
    up: bool = True
    outstanding: int = 0
    completed: int = 0
    failed: int = 0
    last_error: str = ""
    last_failure: str = ""  # the kind of the last failure (client.FailureKind)
    down_since: float = 0.0
    plain: bool = False  # rejected extra fields once: send only OpenAI fields
    _order: int = field(default=0, repr=False)

    def status(self) -> ServerStatus:
        """What /status shows for this server."""
        state = "up" if self.up else "down"
        return ServerStatus(
            url=self.url,
            state=state,
            engine=self.engine.name,
            in_flight=self.outstanding,
            completed=self.completed,
            failed=self.failed,
            last_error=self.last_error if not self.up else "",
        )


class ServerPool:
    """Least-outstanding-requests routing over the servers that are up."""

    def __init__(self, servers: list[Server], *, detect_engine: bool = False) -> None:
        self.servers = servers
        self._detect_engine = detect_engine
        self._turns = itertools.count()

    async def probe(
        self,
        server: Server,
        session: aiohttp.ClientSession,
        headers: dict[str, str],
        timeout: float,
    ) -> Any:
        """``GET /models`` on ``server``: up with its listing, or down (None)."""
        try:
            listing = await get_json(session, f"{server.url}/models", headers, timeout)
        except ServerFailure as failure:
            self.mark_down(server, failure)
            return None
        if self._detect_engine:
            name = engine_from_models(listing)
            if name != server.engine.name:
                _log.info("inference server %s runs %s", server.url, name)
            server.engine = engine(name)
        self.mark_up(server)
        return listing

    def pick(self, exclude: set[str]) -> Server | None:
        """The up server (not in ``exclude``) with the fewest requests in flight; ties rotate."""
        candidates = [s for s in self.servers if s.up and s.url not in exclude]
        if not candidates:
            return None
        best = min(candidates, key=lambda s: (s.outstanding, s._order))
        best._order = next(self._turns)
        return best

    def mark_down(self, server: Server, failure: ServerFailure) -> None:
        """Take ``server`` out of rotation until a probe succeeds."""
        reason = str(failure)
        server.last_error, server.last_failure = reason, failure.kind
        if server.up:
            server.up = False
            server.down_since = time.monotonic()
            _log.warning("inference server %s is down: %s", server.url, reason)

    def mark_up(self, server: Server) -> None:
        """Put ``server`` back in rotation."""
        if not server.up:
            server.up = True
            _log.info(
                "inference server %s is back after %.0fs",
                server.url,
                time.monotonic() - server.down_since,
            )

    def down(self) -> list[Server]:
        """Servers out of rotation."""
        return [s for s in self.servers if not s.up]

    def statuses(self) -> tuple[ServerStatus, ...]:
        """Every server's state, in configured order."""
        return tuple(s.status() for s in self.servers)
