"""Per-conversation history (a channel, a thread or a DM), bounded and resettable.

History is bounded here by turns and by the number of conversations kept;
the token budget is applied when a prompt is built (prompts.build_prompt).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence

from hermes_bot.prompts import Message


class ConversationStore:
    """History per conversation key, least recently used conversations forgotten first."""

    def __init__(self, max_turns: int = 20, max_conversations: int = 10_000) -> None:
        self._max_messages = 2 * max_turns
        self._max_conversations = max_conversations
        self._histories: OrderedDict[str, deque[Message]] = OrderedDict()

    def history(self, key: str) -> list[Message]:
        """A snapshot of the conversation's messages, oldest first."""
        messages = self._histories.get(key)
        if messages is None:
            return []
        self._histories.move_to_end(key)
        return list(messages)

    def record(self, key: str, messages: Sequence[Message]) -> None:
        """Append one exchange (the user's message and the answer) to the history."""
        if self._max_messages == 0:
            return
        history = self._histories.get(key)
        if history is None:
            history = self._histories[key] = deque(maxlen=self._max_messages)
        history.extend(messages)
        self._histories.move_to_end(key)
        while len(self._histories) > self._max_conversations:
            self._histories.popitem(last=False)

    def reset(self, key: str) -> None:
        """Forget the conversation."""
        self._histories.pop(key, None)

    def __len__(self) -> int:
        return len(self._histories)
