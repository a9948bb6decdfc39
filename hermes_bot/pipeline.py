"""One conversational turn: history + message → backend → parse → validate → Reply.

Platform-neutral: adapters turn the Reply into embeds, blocks or terminal cards.
A call that fails validation is retried with the error shown to the model
(``chat.corrective_retries`` times), then the turn falls back to plain text;
raw call markup never reaches a user.
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from dataclasses import dataclass

from hermes_bot.attempt import Attempt, OnText, correction, make_attempt
from hermes_bot.backend import (
    Backend,
    BackendStats,
    Constraint,
    Dialect,
    GenerationParams,
    GenerationRequest,
)
from hermes_bot.config import ChatSettings, Settings
from hermes_bot.conversation import Context, ConversationStore
from hermes_bot.errors import HermesBotError, InputRejected, ToolValidationError
from hermes_bot.observability import Telemetry, Turn
from hermes_bot.prompts import (
    Message,
    SystemPrompts,
    attributed,
    build_prompt,
    format_calls,
    neutralize,
    resolve_dialect,
)
from hermes_bot.tools import Tool, find_tool

_log = logging.getLogger(__name__)

_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]"
)
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_PLAIN_TEXT_NOTE = "Answer the user's last message in plain text, without calling any function."
# A forced call must not be cut off mid-string: give it room for the longest valid call.
FORCED_CALL_MIN_TOKENS = 1024
_GIVE_UP = "I couldn't come up with a proper answer to that. Please rephrase and try again."


@dataclass(frozen=True)
class TextReply:
    """A plain chat answer."""

    text: str


@dataclass(frozen=True)
class ToolReply:
    """Validated tool calls (each one an answer), plus any chat text around them."""

    tools: list[Tool]
    text: str = ""


@dataclass(frozen=True)
class ErrorReply:
    """A short message telling the user what went wrong and what to do."""

    message: str


Reply = TextReply | ToolReply | ErrorReply


def clean_user_text(text: str) -> str:
    """The message with lone surrogates replaced, control characters removed, NFC, stripped."""
    text = _SURROGATE.sub("\ufffd", text)
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text).strip()


class Pipeline:
    """Answers messages; owns the conversation histories and the turn metrics."""

    def __init__(
        self,
        backend: Backend,
        chat: ChatSettings,
        *,
        dialect: Dialect,
        params: GenerationParams,
        conversations: ConversationStore | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.backend = backend
        self.chat = chat
        if conversations is None:
            conversations = ConversationStore(chat.history_turns)
        self.conversations = conversations
        self.telemetry = telemetry or Telemetry()
        self.telemetry.backend_stats = backend.stats
        self.telemetry.watch_conversations(conversations)
        self.dialect = dialect
        channels = {channel.id: channel.instructions for channel in chat.channel}
        self._systems = SystemPrompts(dialect, chat.system_prompt, channels)
        self._params = params

    @classmethod
    def from_settings(
        cls,
        backend: Backend,
        settings: Settings,
        conversations: ConversationStore | None = None,
        telemetry: Telemetry | None = None,
    ) -> Pipeline:
        """A pipeline from the ``chat``, ``model`` and ``generation`` sections of ``settings``."""
        return cls(
            backend,
            settings.chat,
            dialect=resolve_dialect(settings.model.dialect, settings.model.id),
            params=settings.generation.params(),
            conversations=conversations,
            telemetry=telemetry,
        )

    async def reset(self, key: str) -> None:
        """Forget the conversation ``key``; raises StorageError if the disk refused."""
        await self.conversations.reset(key)

    async def forget_user(self, user_id: str) -> int:
        """Delete everything stored about ``user_id``; returns the exchanges removed."""
        return await self.conversations.forget_user(user_id)

    async def history_length(self, key: str) -> int:
        """Messages remembered for ``key``."""
        return len(await self.conversations.history(key))

    def stats(self) -> BackendStats:
        """The backend's metrics."""
        return self.backend.stats()

    async def respond(
        self,
        key: str,
        text: str,
        *,
        context: Context | None = None,
        forced_tool: str | None = None,
        on_text: OnText | None = None,
    ) -> Reply:
        """Answer ``text`` in conversation ``key``; never raises HermesBotError."""
        context = context or Context()
        turn = Turn(context.platform, context.kind)
        try:
            return await self._respond(key, text, context, forced_tool, on_text, turn)
        except HermesBotError as error:
            self.telemetry.failed(turn, error)
            _log.warning("turn in %s failed: %s", key, error)
            return ErrorReply(error.user_message)
        except asyncio.CancelledError:
            turn.outcome = "cancelled"
            raise
        except Exception:
            _log.exception("unexpected error answering in %s", key)
            return ErrorReply("Something went wrong on my side. Please try again.")
        finally:
            self.telemetry.turn(turn)

    def _check_input(self, text: str) -> str:
        cleaned = clean_user_text(text)
        if not cleaned:
            raise InputRejected(
                "empty message",
                user_message="Your message is empty. Write something and try again.",
            )
        limit = self.chat.max_message_chars
        if len(cleaned) > limit:
            raise InputRejected(
                f"message of {len(cleaned)} characters",
                user_message=(
                    f"Your message is too long ({len(cleaned):,} characters; the limit is "
                    f"{limit:,}). Shorten it and try again."
                ),
            )
        return cleaned

    def _constraint(self, forced_tool: str | None) -> Constraint | None:
        if forced_tool is not None:
            tool = find_tool(forced_tool)
            if tool is None:
                raise ToolValidationError(
                    f"unknown forced tool {forced_tool!r}",
                    user_message="That command is not available. Ask the bot's owner to check "
                    "the logs.",
                )
            return Constraint("forced", self.dialect, (tool.__name__,))
        mode = self.chat.constraint
        return None if mode == "off" else Constraint(mode, self.dialect)

    async def _respond(
        self,
        key: str,
        text: str,
        context: Context,
        forced_tool: str | None,
        on_text: OnText | None,
        turn: Turn,
    ) -> Reply:
        text = self._check_input(text)
        if context.shared and context.speaker.name:
            text = attributed(context.speaker.name, text)
        user = Message("user", neutralize(text))
        history = await self.conversations.history(key)
        constraint = self._constraint(forced_tool)
        system = self._systems.for_channels(context.channel_ids)
        attempt = await self._attempt(system, history, [user], constraint, on_text, turn)
        retries = self.chat.corrective_retries
        while retries and not attempt.tools and (attempt.problems or forced_tool):
            retries -= 1
            turn.retries += 1
            self.telemetry.corrective_retries.inc()
            problems = attempt.problems or [f"call the function {forced_tool}"]
            _log.info("retrying a turn in %s after: %s", key, "; ".join(problems[:5]))
            again = correction(user, attempt, problems)
            attempt = await self._attempt(system, history, again, constraint, None, turn)
        reply = _reply(attempt)
        if reply is None:
            note = Message("system", _PLAIN_TEXT_NOTE)
            attempt = await self._attempt(system, history, [user, note], None, None, turn)
            reply = TextReply(attempt.parsed.text) if attempt.parsed.text else None
        if reply is None:
            return ErrorReply(_GIVE_UP)
        turn.outcome = "tool" if isinstance(reply, ToolReply) else "answered"
        turn.tool = ",".join(type(tool).__name__ for tool in attempt.tools)
        answer = neutralize(self._answer(attempt))
        await self.conversations.record(key, context.speaker.user_id, user.content, answer)
        return reply

    def _answer(self, attempt: Attempt) -> str:
        """What the assistant said, for the history: the valid calls, then any text."""
        calls = format_calls(attempt.valid_calls, self.dialect) if attempt.valid_calls else ""
        return "\n".join(part for part in (calls, attempt.parsed.text) if part)

    async def _attempt(
        self,
        system: str,
        history: list[Message],
        new_messages: list[Message],
        constraint: Constraint | None,
        on_text: OnText | None,
        turn: Turn,
    ) -> Attempt:
        params = self._params
        if constraint is not None and constraint.mode == "forced":
            params = params.with_overrides(
                max_new_tokens=max(params.max_new_tokens, FORCED_CALL_MIN_TOKENS)
            )
        budget = self.backend.context_window - params.max_new_tokens
        prompt = build_prompt(
            system, history, new_messages, count_tokens=self.backend.count_tokens, budget=budget
        )
        request = GenerationRequest(prompt, params, constraint)
        return await make_attempt(
            self.backend, request, on_text=on_text, turn=turn, telemetry=self.telemetry
        )


def _reply(attempt: Attempt) -> Reply | None:
    if attempt.tools:
        return ToolReply(attempt.tools, attempt.parsed.text)
    if attempt.parsed.text and not attempt.problems:
        return TextReply(attempt.parsed.text)
    return None
