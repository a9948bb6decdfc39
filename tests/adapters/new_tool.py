"""A fourth tool, registered by tests only: every platform must pick it up with no code of its own."""

from __future__ import annotations

from pydantic import Field

from hermes_bot.tools import Card, FollowUp, Option, Tool, ToolCall, ToolSpec


class Riddle(Tool):
    """Ask the user a riddle about a topic."""

    topic: str = Field(description="What the riddle is about", max_length=100)
    question: str = Field(description="The riddle", max_length=300)
    solution: str = Field(description="Its solution", max_length=300)


RIDDLE = ToolSpec(
    Riddle,
    command="riddle",
    description="Ask me a riddle",
    prompt="Give me a riddle about {option}.",
    option=Option("topic", "What the riddle should be about", max_length=50),
    card=Card(
        "A riddle", "🧩", headline="question", secret="solution", fields=(("About", "topic"),)
    ),
    follow_up=FollowUp("Another riddle", "🔁", "Another riddle on the same topic, please."),
)
CALL = ToolCall(
    "Riddle", {"topic": "cats", "question": "What has nine lives?", "solution": "A cat."}
)
