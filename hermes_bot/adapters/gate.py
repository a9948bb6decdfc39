"""Who may talk to the bot (allow lists) and how often (a per-user sliding window).

Platform-neutral: identifiers are whatever the platform uses (Discord's integer
snowflakes, Slack's ``T…``/``C…``/``U…`` strings), compared as given. Each
adapter maps its own message or command onto an :class:`Origin` and renders the
:class:`Decision` its own way.
"""

from __future__ import annotations

import enum
import math
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

Id = Hashable
_FORGET_AT = 10_000


@dataclass(frozen=True)
class Origin:
    """Where a message or command comes from, as the allow lists see it.

    ``workspace`` is the Discord guild or Slack workspace, None in DMs.
    ``channels`` holds the channel and, for a thread, its parent channel.
    ``roles`` is empty where the platform has none (DMs, Slack).
    """

    user: Id
    workspace: Id | None
    channels: tuple[Id, ...]
    roles: tuple[Id, ...] = ()


def _matches(allowed: frozenset[Id], values: Iterable[Id | None]) -> bool:
    return not allowed or any(value in allowed for value in values)


class Verdict(enum.Enum):
    """What the adapter does with a message or command."""

    ANSWER = "answer"
    """Allowed and within the rate limit."""
    DENY = "deny"
    """Not on the allow lists: ignore a message; refuse a command privately."""
    COOLDOWN_NOTICE = "cooldown_notice"
    """Rate limited, first refusal in this window: tell the user when to retry."""
    COOLDOWN_MARK = "cooldown_mark"
    """Rate limited and already told: mark the message (a reaction), send nothing."""


@dataclass(frozen=True)
class Decision:
    """A :class:`Verdict` and, when rate limited, the seconds until the user may retry."""

    verdict: Verdict
    retry_after: float = 0.0


class Gate:
    """Allow lists of workspaces, channels, roles and users, and a per-user rate limit.

    An empty list allows everyone; a non-empty list must match. Every list must
    pass, so with a workspace or role list set, DMs are refused. At most
    ``limit`` messages per user are answered within any ``window`` seconds; a
    refused user is told once, until the window lets them in again.
    """

    def __init__(
        self,
        *,
        workspaces: Iterable[Id] = (),
        channels: Iterable[Id] = (),
        roles: Iterable[Id] = (),
        users: Iterable[Id] = (),
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workspaces = frozenset(workspaces)
        self.channels = frozenset(channels)
        self.roles = frozenset(roles)
        self.users = frozenset(users)
        self.limit = limit
        self.window = window
        self._clock = clock
        self._events: dict[Id, deque[float]] = {}
        self._told_until: dict[Id, float] = {}

    def allows(self, origin: Origin) -> bool:
        """Whether ``origin`` passes every allow list (no rate limit counted)."""
        return (
            _matches(self.workspaces, [origin.workspace])
            and _matches(self.channels, origin.channels)
            and _matches(self.roles, origin.roles)
            and _matches(self.users, [origin.user])
        )

    def check(self, origin: Origin) -> Decision:
        """The allow lists, then the rate limit (which counts an answered message)."""
        if not self.allows(origin):
            return Decision(Verdict.DENY)
        return self.admit(origin.user)

    def admit(self, user: Id) -> Decision:
        """Count one message from ``user`` against the rate limit."""
        now = self._clock()
        events = self._events.setdefault(user, deque())
        while events and now - events[0] >= self.window:
            events.popleft()
        if len(events) >= self.limit:
            retry_after = max(0.0, events[0] + self.window - now)
            if now < self._told_until.get(user, -math.inf):
                return Decision(Verdict.COOLDOWN_MARK, retry_after)
            self._told_until[user] = now + retry_after
            return Decision(Verdict.COOLDOWN_NOTICE, retry_after)
        events.append(now)
        self._told_until.pop(user, None)
        self._forget_idle(now)
        return Decision(Verdict.ANSWER)

    def _forget_idle(self, now: float) -> None:
        """Keep memory bounded: drop users idle for a whole window once there are many."""
        if len(self._events) < _FORGET_AT:
            return
        idle = [user for user, ev in self._events.items() if not ev or now - ev[-1] >= self.window]
        for user in idle:
            del self._events[user]
            self._told_until.pop(user, None)

    def cooldown_notice(self, retry_after: float) -> str:
        """The short message a rate-limited user sees."""
        seconds = max(1, math.ceil(retry_after))
        return (
            f"⏳ You're sending messages too quickly (limit: {self.limit} every "
            f"{self.window:g} s). Try again in {seconds} s."
        )
