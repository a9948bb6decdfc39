"""What a failed request means: try another server, or which error the user sees.

A failure another server would repeat (a prompt too long, a request rejected)
is raised at once; a server that is down, busy or refuses the bot is left for
the next one in rotation, and taken out of rotation unless it is only busy.
"""

from __future__ import annotations

import logging
from typing import Any

from hermes_bot.errors import Busy, GenerationError, PromptTooLong, ServerUnreachable
from hermes_bot.inference.remote.client import ServerFailure
from hermes_bot.inference.remote.engines import OPENAI_FIELDS
from hermes_bot.inference.remote.pool import Server, ServerPool

_log = logging.getLogger(__name__)


def handle_failure(
    pool: ServerPool,
    server: Server,
    failure: ServerFailure,
    body: dict[str, Any],
    tried: set[str],
) -> None:
    """Raise for failures another server would repeat; otherwise let the next one try."""
    if failure.kind == "too_long":
        raise PromptTooLong(f"{server.url}: {failure}")
    if failure.kind == "unknown_fields" and not server.plain and set(body) - OPENAI_FIELDS:
        _log.warning(
            "%s rejected the %s fields; sending it only OpenAI fields from now on (%s)",
            server.engine.name,
            ", ".join(sorted(set(body) - OPENAI_FIELDS)),
            failure,
        )
        server.plain = True
        tried.discard(server.url)  # the same server again, without the extra fields
        return
    if failure.kind in ("rejected", "unknown_fields"):
        raise GenerationError(
            f"{server.url} rejected the request: {failure}",
            user_message="The model server rejected that request. Please try again.",
        )
    server.failed += 1
    if failure.kind != "busy":
        pool.mark_down(server, failure)
    _log.warning("%s could not take a request (%s); trying another", server.url, failure)


def all_failed(kinds: list[str], last: str) -> GenerationError | Busy:
    """The error for a request no server took, worded for what went wrong everywhere."""
    detail = f"no inference server could take the request; last: {last}"
    if kinds and all(kind == "busy" for kind in kinds):
        return Busy(f"every inference server is busy ({last})")
    if kinds and all(kind == "auth" for kind in kinds):
        return GenerationError(
            detail,
            user_message="The model server refused the bot's API key. "
            "Ask the bot's owner to check remote.api_key.",
        )
    if kinds and all(kind == "model" for kind in kinds):
        return GenerationError(
            detail,
            user_message="The model server does not serve the configured model. "
            "Ask the bot's owner to check remote.model.",
        )
    return ServerUnreachable(detail)


def stopped_mid_answer(detail: str) -> GenerationError:
    """The error for an answer a server broke off and no other server could continue."""
    return GenerationError(
        f"a server failed mid-answer and no other could continue: {detail}",
        user_message="The model server stopped in the middle of my answer. Please try again.",
    )
