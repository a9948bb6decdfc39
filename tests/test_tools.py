"""Tool models, schema export and call validation."""

from __future__ import annotations

import pytest

from hermes_bot.errors import ToolValidationError
from hermes_bot.tools import (
    TOOLS,
    BookRecommendation,
    Joke,
    SongRecommendation,
    ToolCall,
    find_tool,
    function_schemas,
    validate_call,
)


def test_schemas_are_openai_functions_without_titles() -> None:
    schemas = function_schemas()
    assert [s["name"] for s in schemas] == ["Joke", "SongRecommendation", "BookRecommendation"]
    joke = schemas[0]
    assert set(joke) == {"name", "description", "parameters"}
    assert joke["parameters"]["required"] == ["setup", "answer"]
    assert joke["parameters"]["additionalProperties"] is False
    assert joke["parameters"]["properties"]["setup"]["description"] == "Question to set up a joke"
    assert "title" not in str(schemas)


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        pytest.param("Joke", {"setup": "Why?", "answer": "Because."}, Joke, id="exact-name"),
        pytest.param(
            "song_recommendation",
            {"interest": "focus", "recommended_song": "Weightless"},
            SongRecommendation,
            id="snake-case",
        ),
        pytest.param(
            "bookrecommendation",
            {"interest": "crime thriller", "recommended_book": "Gone Girl"},
            BookRecommendation,
            id="lower-case",
        ),
    ],
)
def test_validate_call_accepts_good_calls(name: str, arguments: dict, expected: type) -> None:
    tool = validate_call(ToolCall(name, arguments))
    assert isinstance(tool, expected)
    assert tool.model_dump() == arguments


@pytest.mark.parametrize(
    ("call", "message_part"),
    [
        pytest.param(ToolCall("Weather", {}), "Unknown function 'Weather'", id="unknown-tool"),
        pytest.param(
            ToolCall("Joke", {"setup": "  ", "answer": "x"}), "must not be empty", id="empty-setup"
        ),
        pytest.param(
            ToolCall("SongRecommendation", {"interest": "", "recommended_song": "x"}),
            "interest: interest must not be empty",
            id="empty-interest",
        ),
        pytest.param(
            ToolCall("Joke", {"setup": "a"}), "answer: Field required", id="missing-field"
        ),
        pytest.param(
            ToolCall("Joke", {"setup": "a", "answer": "b", "rating": 5}),
            "rating: unknown key",
            id="extra-field",
        ),
        pytest.param(
            ToolCall("Joke", {"setup": "a" * 301, "answer": "b"}), "at most 300", id="too-long"
        ),
        pytest.param(ToolCall("Joke", ["a", "b"]), "must be a JSON object", id="not-an-object"),  # type: ignore[arg-type]
    ],
)
def test_validate_call_rejects_with_user_message(call: ToolCall, message_part: str) -> None:
    with pytest.raises(ToolValidationError) as caught:
        validate_call(call)
    assert message_part in caught.value.user_message


def test_registry_lookup() -> None:
    assert set(TOOLS) == {"Joke", "SongRecommendation", "BookRecommendation"}
    assert find_tool("JOKE") is Joke
    assert find_tool("recommend") is None
