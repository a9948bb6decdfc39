"""One attempt at an answer: request → backend → parse → validate, and the correction after it.

A turn makes one attempt, then one per corrective retry while its calls are
invalid (the rejected completion and a list of its problems go back to the
model), and a last plain-text attempt if none succeeded. Each attempt adds its
tokens to the turn and counts parse and validation failures.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from hermes_bot.backend import Backend, GenerationRequest
from hermes_bot.errors import ToolValidationError
from hermes_bot.observability import Telemetry, Turn
from hermes_bot.parsing import ParsedCompletion, parse_completion, parse_stage, visible_text
from hermes_bot.prompts import Message, neutralize
from hermes_bot.tools import Tool, ToolCall, find_tool, validate_call

OnText = Callable[[str], Awaitable[None]]

# Characters of a rejected completion shown back to the model with the correction.
ECHO_LIMIT = 2000
# Problems listed in a correction; the rest are counted.
_PROBLEMS_SHOWN = 5


@dataclass
class Attempt:
    """A completion, what the parser read in it, its valid tools and its problems."""

    completion: str
    parsed: ParsedCompletion
    tools: list[Tool] = field(default_factory=list)
    valid_calls: list[ToolCall] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


async def make_attempt(
    backend: Backend,
    request: GenerationRequest,
    *,
    on_text: OnText | None,
    turn: Turn,
    telemetry: Telemetry,
) -> Attempt:
    """Complete ``request`` (streaming the visible text to ``on_text`` if given) and validate."""
    if on_text is None:
        result = await backend.generate(request)
        turn.mark_first_token()
        completion = result.text
        turn.prompt_tokens += result.prompt_tokens
        turn.completion_tokens += result.completion_tokens
    else:
        completion = await _stream(backend, request, on_text, turn)
        turn.prompt_tokens += backend.count_tokens(request.prompt)
        turn.completion_tokens += backend.count_tokens(completion)
    attempt = Attempt(completion, parse_completion(completion))
    attempt.problems.extend(attempt.parsed.errors)
    for note in attempt.parsed.errors:
        telemetry.parse_failures.labels(parse_stage(note)).inc()
    for call in attempt.parsed.calls:
        try:
            attempt.tools.append(validate_call(call))
            attempt.valid_calls.append(call)
        except ToolValidationError as error:
            attempt.problems.append(str(error))
            tool = find_tool(call.name)
            name = tool.__name__ if tool is not None else "unknown"
            telemetry.validation_failures.labels(name).inc()
    return attempt


def correction(user: Message, rejected: Attempt, problems: list[str]) -> list[Message]:
    """The messages of a corrective retry: the question, the rejected answer, what was wrong."""
    listed = "\n".join(f"- {problem}" for problem in problems[:_PROBLEMS_SHOWN])
    if len(problems) > _PROBLEMS_SHOWN:
        listed += f"\n- ... and {len(problems) - _PROBLEMS_SHOWN} more"
    note = (
        "Your function call was not valid:\n"
        f"{listed}\n"
        "Call the function again with valid arguments, or answer in plain text."
    )
    return [
        user,
        Message("assistant", neutralize(rejected.completion[:ECHO_LIMIT])),
        Message("user", note),
    ]


async def _stream(backend: Backend, request: GenerationRequest, on_text: OnText, turn: Turn) -> str:
    completion = ""
    shown = ""
    async for delta in backend.stream(request):
        turn.mark_first_token()
        completion += delta
        visible = visible_text(completion)
        if visible != shown:
            shown = visible
            await on_text(visible)
    return completion
