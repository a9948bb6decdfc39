"""Fixtures every platform's tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hermes_bot.tools import ToolSpec, register, unregister
from tests.adapters.new_tool import RIDDLE


@pytest.fixture
def riddle() -> Iterator[ToolSpec]:
    """The Riddle tool, registered for the test."""
    register(RIDDLE)
    try:
        yield RIDDLE
    finally:
        unregister(RIDDLE.name)
