"""Fault switches for the fake Discord's REST API: errors, 429s, slow and dropped responses.

``fake.fail("POST", "channels", "*", "messages", status=503)`` makes the next
matching call fail; ``times`` says how many calls, ``None`` meaning all of them.
A fault applies before the route runs, so a failed call changes nothing.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from aiohttp import web

DROP = "drop"
DROP_AFTER = "drop_after"


@dataclass
class Fault:
    """Make matching REST calls fail: an HTTP status, a dropped connection, or a delay."""

    method: str
    prefix: tuple[str, ...]
    status: int | str | None = None
    """An HTTP status; ``DROP``: close the connection unanswered, the call not made;
    ``DROP_AFTER``: make the call, then close the connection unanswered; None: delay only."""
    delay: float = 0.0
    times: int | None = 1
    hits: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    """With ``hold=True``: matching calls wait until this is set."""
    hold: bool = False

    def matches(self, method: str, parts: list[str]) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return (
            method == self.method
            and len(parts) >= len(self.prefix)
            and all(want in ("*", have) for want, have in zip(self.prefix, parts, strict=False))
        )


def drop(request: web.Request) -> None:
    """Close the connection without an answer (the client sees it disconnect)."""
    if request.transport is not None:
        request.transport.close()
    raise ConnectionResetError("fake Discord dropped the connection")


def _error_body(status: int) -> dict[str, object]:
    if status == 429:
        return {"message": "You are being rate limited.", "retry_after": 0.05, "global": False}
    if status == 403:
        return {"message": "Missing Permissions", "code": 50013}
    if status == 404:
        return {"message": "Unknown Message", "code": 10008}
    return {"message": f"{status}: fake server error", "code": 0}


async def apply(fault: Fault, request: web.Request) -> web.StreamResponse | None:
    """Run ``fault`` on one call: a response to send instead, or None to go on routing."""
    fault.hits += 1
    if fault.hold:
        await fault.release.wait()
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.status == DROP:
        drop(request)
    if fault.status in (None, DROP_AFTER):
        return None
    status = int(fault.status)
    headers = {"Content-Type": "application/json"}
    if status == 429:
        headers.update({"Via": "1.1 google", "Retry-After": "1"})
    body = json.dumps(_error_body(status)).encode()
    return web.Response(body=body, status=status, headers=headers)
