"""The project's exceptions: one base class and a few subclasses.

Each error carries two messages: ``str(error)`` is the detail for logs, and
``user_message`` is short, safe to show a user, and says what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails


class HermesBotError(Exception):
    """Base class of every error hermes-bot raises on purpose."""

    default_user_message = "Something went wrong on my side. Please try again."

    def __init__(self, message: str, *, user_message: str | None = None) -> None:
        super().__init__(message)
        self.user_message = user_message or self.default_user_message


class ConfigError(HermesBotError):
    """The configuration is missing, unreadable or invalid."""

    default_user_message = "The bot is misconfigured. Ask its owner to check the logs."


class ModelLoadError(HermesBotError):
    """The model or tokenizer could not be loaded."""

    default_user_message = "The model is not loaded. Ask the bot's owner to check the logs."


class PlatformError(HermesBotError):
    """A chat platform (Discord, Slack) could not be reached at start-up."""

    default_user_message = "The chat platform cannot be reached. Check the network and retry."


class InputRejected(HermesBotError):
    """A user's message cannot be processed (empty, too long, ...)."""

    default_user_message = "I can't process that message. Change it and try again."


class Busy(HermesBotError):
    """The inference queue is full; the request was not accepted."""

    def __init__(self, message: str, *, queue_position: int | None = None) -> None:
        hint = f" ({queue_position} requests ahead of you)" if queue_position else ""
        super().__init__(
            message, user_message=f"I'm busy right now{hint}. Please try again in a moment."
        )
        self.queue_position = queue_position


class GenerationError(HermesBotError):
    """Generation failed, timed out or was cancelled."""

    default_user_message = "I couldn't finish that answer. Please try again."


class ServerUnreachable(GenerationError):
    """No inference server could take the request (remote backend)."""

    default_user_message = (
        "The model server is unreachable right now. Please try again in a few minutes."
    )


class PromptTooLong(GenerationError):
    """The prompt does not fit in the model's context window."""

    default_user_message = "That conversation is too long for me. Use /reset and try again."


class ToolValidationError(HermesBotError):
    """A function call's name or arguments failed validation."""

    default_user_message = "That function call was not valid. Please rephrase and try again."


class GrammarError(HermesBotError):
    """A constrained-decoding grammar could not be compiled."""

    default_user_message = (
        "Constrained decoding is misconfigured. Ask the bot's owner to check the logs."
    )


class StorageError(HermesBotError):
    """The conversation database could not be opened, read or written."""

    default_user_message = "I couldn't reach my memory. Ask the bot's owner to check the logs."


def problem_message(item: ErrorDetails) -> str:
    """One problem pydantic found, worded for people: an extra key is an "unknown key", and a
    validator's message loses pydantic's "Value error, " prefix."""
    if item["type"] == "extra_forbidden":
        return "unknown key"
    return item["msg"].removeprefix("Value error, ")
