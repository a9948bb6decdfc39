"""Run /joke, /song and /book in the fake Discord, one after the other, and collect the replies."""

from __future__ import annotations

from tests.adapters.discord import fake_payloads as p

# (command, its options, words the card's title must hold)
TOOL_COMMANDS = [
    ("joke", None, "Here's a joke"),
    ("song", {"interest": "rainy days"}, "A song for you"),
    ("book", {"interest": "sea stories"}, "A book for you"),
]


async def tool_card_replies(fake, timeout: float) -> list[tuple[str, p.Payload]]:
    """(expected title, follow-up JSON) per command, each awaited before the next is sent."""
    replies = []
    for command, options, title in TOOL_COMMANDS:
        interaction = await fake.slash(command, options)
        _, followup = await fake.wait_for(
            lambda i=interaction: (c := fake.interaction_calls(i)) and len(c) >= 2 and c,
            timeout=timeout,
        )
        replies.append((title, followup.json))
    return replies
