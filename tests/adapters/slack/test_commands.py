"""Slash commands, the mention form of them, and the joke card's buttons."""

from __future__ import annotations

import asyncio

from hermes_bot.adapters.slack.blocks import FOLLOW_UP, REVEAL
from hermes_bot.adapters.slack.commands import parse_command
from hermes_bot.backend import GenerationRequest
from tests.adapters.discord.markup import BOOK, JOKE, SONG, call
from tests.adapters.slack.fake_slack import ALICE, BOB, GENERAL, dm_channel
from tests.fakes import Script, ScriptedBackend


class HeldBackend(ScriptedBackend):
    """Generation waits until ``release`` is set: whatever happens before it did not wait.

    ``held`` lists the requests waiting; ``script`` answers each by its prompt, for
    turns whose order of arrival is not fixed.
    """

    def __init__(self, *completions: str, script: Script | None = None) -> None:
        super().__init__(script or completions)
        self.release = asyncio.Event()
        self.held: list[GenerationRequest] = []

    async def stream(self, request):
        self.held.append(request)
        await self.release.wait()
        async for delta in super().stream(request):
            yield delta


def _card_texts(message) -> str:
    return " ".join(
        str(b.get("text", {}).get("text", "")) + " ".join(f["text"] for f in b.get("fields", []))
        for b in message["blocks"]
    )


async def test_slash_joke_is_acked_before_the_model_answers_then_shown_as_a_card(fake, start_bot):
    backend = HeldBackend(JOKE)
    running = await start_bot(backend=backend)
    await fake.slash("/joke")
    await fake.wait_for(lambda: fake.acks("slash_commands"))  # while the model is held
    backend.release.set()
    card = (
        await fake.wait_for(lambda: [m for m in fake.bot_messages(GENERAL) if "joke" in m["text"]])
    )[0]
    assert "thread_ts" not in card  # in the channel
    assert "Why did the GPU cross the road?" in _card_texts(card)
    assert "other batch" not in _card_texts(card)  # the answer hides behind a button
    assert "/joke" in card["blocks"][0]["elements"][0]["text"]  # who asked what
    request = running.backend.requests[0]
    assert request.constraint.mode == "forced" and request.constraint.tools == ("Joke",)


async def test_show_answer_is_private_and_another_one_adds_a_joke(fake, start_bot):
    another = call("Joke", setup="What is a pirate's favourite letter?", answer="The C.")
    running = await start_bot([JOKE, another])
    await fake.slash("/joke")
    card = (
        await fake.wait_for(lambda: [m for m in fake.bot_messages(GENERAL) if "joke" in m["text"]])
    )[0]
    await fake.click(card, REVEAL, user=BOB)
    shown = await fake.wait_for(lambda: fake.ephemerals_for(BOB))
    assert "To get to the other batch." in shown[0]["text"]
    await fake.click(card, FOLLOW_UP + "Joke")
    await fake.wait_for(
        lambda: len([m for m in fake.bot_messages(GENERAL) if "joke" in m["text"]]) == 2
    )
    assert "pirate" in _card_texts(fake.bot_messages(GENERAL)[-1])
    assert "Why did the GPU" in running.backend.requests[1].prompt  # same conversation


async def test_song_and_book_cards_link_to_searches(fake, start_bot):
    await start_bot([SONG, BOOK])
    await fake.slash("/song", "synthwave")
    await fake.wait_for(
        lambda: (
            len(fake.bot_messages(GENERAL)) == 1 and "song" in fake.bot_messages(GENERAL)[0]["text"]
        )
    )
    await fake.slash("/book", "space opera")
    await fake.wait_for(
        lambda: (
            len(fake.bot_messages(GENERAL)) == 2 and "book" in fake.bot_messages(GENERAL)[1]["text"]
        )
    )
    song, book = fake.bot_messages(GENERAL)
    assert "Nightcall - Kavinsky" in _card_texts(song) and "synthwave" in _card_texts(song)
    assert "open.spotify.com/search/Nightcall+-+Kavinsky" in _card_texts(song)
    assert "Dune (Frank Herbert)" in _card_texts(book) and "openlibrary.org" in _card_texts(book)


async def test_usage_refusals_reset_and_status_are_private_on_the_ack(fake, start_bot):
    running = await start_bot(["hello there"])
    await fake.slash("/song", "")
    await fake.slash("/chat", "hi", channel=dm_channel(ALICE))
    await fake.wait_for(
        lambda: (
            fake.bot_messages(dm_channel(ALICE))
            and "hello" in fake.bot_messages(dm_channel(ALICE))[0]["text"]
        )
    )
    await fake.wait_for(lambda: len(fake.ephemerals_for(ALICE)) == 1)
    await fake.slash("/status", channel=dm_channel(ALICE))
    await fake.wait_for(lambda: len(fake.ephemerals_for(ALICE)) == 2)
    await fake.slash("/reset", channel=dm_channel(ALICE))
    notes = await fake.wait_for(
        lambda: len(fake.ephemerals_for(ALICE)) == 3 and fake.ephemerals_for(ALICE)
    )
    assert "Usage: `/song <interest>`" in notes[0]["text"]
    status_fields = " ".join(f["text"] for f in notes[1]["blocks"][1]["fields"])
    assert "scripted" in status_fields and "2 messages remembered" in status_fields
    assert "forgotten" in notes[2]["text"]
    assert await running.pipeline.history_length(f"slack:T0TEAM:dm:{dm_channel(ALICE)}") == 0
    assert fake.bot_messages(GENERAL) == []


async def test_in_a_thread_the_mention_form_does_what_slash_commands_do(fake, start_bot):
    running = await start_bot(["first", SONG])
    root = await fake.post("hello", mention=True)
    await fake.wait_for(lambda: "first" in str(fake.bot_messages(GENERAL, root["ts"])))
    await fake.post("/song synthwave", mention=True, thread_ts=root["ts"])
    await fake.wait_for(lambda: "Nightcall" in str(fake.bot_messages(GENERAL, root["ts"])))
    assert running.backend.requests[1].constraint.tools == ("SongRecommendation",)
    await fake.post("/reset", mention=True, thread_ts=root["ts"])
    await fake.wait_for(lambda: fake.ephemerals_for(ALICE))
    assert fake.ephemerals_for(ALICE)[0]["thread_ts"] == root["ts"]
    key = f"slack:T0TEAM:thread:{GENERAL}:{root['ts']}"
    assert await running.pipeline.history_length(key) == 0


def test_parse_command_reads_the_mention_form():
    assert parse_command("/song  jazz fusion").prompt.endswith("My interest: jazz fusion")
    assert parse_command("/joke").forced_tool == "Joke"
    assert parse_command("/book").usage.startswith("Usage: `/book <interest>`")
    assert "under 200 characters" in parse_command("/book " + "x" * 201).usage
    assert parse_command("/joke about cats").prompt == "Tell me a joke. About: about cats"
    assert parse_command("/unknown thing") is None
    assert parse_command("tell me a /joke") is None


async def test_where_the_bot_may_not_post_the_answer_goes_through_the_response_url(fake, start_bot):
    await start_bot([SONG])
    fake.fail("chat.postMessage", "not_in_channel")
    await fake.slash("/song", "synthwave")
    await fake.wait_for(lambda: "Nightcall" in str(fake.bot_messages(GENERAL)))
    assert [c.result["ok"] for c in fake.api("response_url")] == [True]


async def test_forget_me_deletes_what_the_user_said_everywhere_and_only_that(fake, start_bot):
    running = await start_bot(["hi Alice", "hi Bob"])
    await fake.slash("/chat", "remember 42", channel=dm_channel(ALICE))
    await fake.wait_for(lambda: "Alice" in str(fake.bot_messages(dm_channel(ALICE))))
    await fake.slash("/chat", "I like tea", channel=dm_channel(BOB), user=BOB)
    await fake.wait_for(lambda: "Bob" in str(fake.bot_messages(dm_channel(BOB))))
    assert "asked by Bob" in str(fake.bot_messages(dm_channel(BOB))[0]["blocks"][0])
    await fake.post("/forget-me", channel=dm_channel(ALICE), mention=True)
    [note] = await fake.wait_for(lambda: fake.ephemerals_for(ALICE))
    assert "Deleted 1 of your messages" in note["text"]
    history = running.pipeline.history_length
    assert await history(f"slack:T0TEAM:dm:{dm_channel(ALICE)}") == 0
    assert await history(f"slack:T0TEAM:dm:{dm_channel(BOB)}") == 2
