"""Who may talk to the bot (allow lists) and how often (a per-user sliding window)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hermes_bot.config import DiscordSettings


@dataclass(frozen=True)
class Origin:
    """Where a message or interaction comes from, as the allow lists see it.

    ``channel_ids`` holds the channel and, for a thread, its parent channel.
    ``guild_id`` is None in DMs, where ``role_ids`` is empty.
    """

    user_id: int
    guild_id: int | None
    channel_ids: tuple[int, ...]
    role_ids: tuple[int, ...] = ()


def _matches(allowed: frozenset[int], values: Iterable[int | None]) -> bool:
    return not allowed or any(value in allowed for value in values)


class AccessPolicy:
    """Allow lists of guilds, channels, roles and users.

    An empty list allows everyone; a non-empty list must match. Every list must
    pass, so with a guild or role list set, DMs are refused.
    """

    def __init__(self, settings: DiscordSettings) -> None:
        self.guilds = frozenset(settings.allowed_guilds)
        self.channels = frozenset(settings.allowed_channels)
        self.roles = frozenset(settings.allowed_roles)
        self.users = frozenset(settings.allowed_users)

    def allows(self, origin: Origin) -> bool:
        """Whether ``origin`` passes every allow list."""
        return (
            _matches(self.guilds, [origin.guild_id])
            and _matches(self.channels, origin.channel_ids)
            and _matches(self.roles, origin.role_ids)
            and _matches(self.users, [origin.user_id])
        )


class RateLimiter:
    """At most ``limit`` accepted events per user within any ``window`` seconds."""

    def __init__(
        self, limit: int, window: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._events: dict[int, deque[float]] = {}

    def hit(self, user_id: int) -> float | None:
        """Record an event: None when accepted, else seconds until the user may retry."""
        now = self._clock()
        events = self._events.setdefault(user_id, deque())
        while events and now - events[0] >= self.window:
            events.popleft()
        if len(events) >= self.limit:
            return max(0.0, events[0] + self.window - now)
        events.append(now)
        self._forget_idle(now)
        return None

    def _forget_idle(self, now: float) -> None:
        if len(self._events) < 10_000:
            return
        for user_id in [
            uid for uid, ev in self._events.items() if not ev or now - ev[-1] >= self.window
        ]:
            del self._events[user_id]


def cooldown_notice(retry_after: float, limit: int, window: float) -> str:
    """The short message a rate-limited user sees."""
    seconds = max(1, math.ceil(retry_after))
    return (
        f"⏳ You're sending messages too quickly (limit: {limit} every {window:g} s). "
        f"Try again in {seconds} s."
    )
