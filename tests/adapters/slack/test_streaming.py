"""Streaming through chat.update, Slack's limits, and model text that tries to ping."""

from __future__ import annotations

from hermes_bot.adapters.slack.blocks import SECTION_LIMIT
from hermes_bot.adapters.slack.mrkdwn import to_mrkdwn
from tests.adapters.discord.markup import call
from tests.adapters.slack.block_kit import check_message, pings
from tests.adapters.slack.fake_slack import GENERAL
from tests.adapters.slack.test_commands import HeldBackend


def _refused(fake):
    """Web API calls Slack refused, besides the probe for the thread status."""
    return [c for c in fake.calls if not c.result.get("ok") and "setStatus" not in c.method]


def _final(fake, ts):
    shown = fake.bot_messages(GENERAL, ts)
    return shown and "▌" not in str(shown) and "thinking" not in str(shown)


def _shown(fake, ts):
    return " ".join(
        b["text"]["text"]
        for m in fake.bot_messages(GENERAL, ts)
        for b in m["blocks"]
        if b["type"] == "section"
    )


async def test_the_answer_streams_into_the_placeholder_and_holds_back_call_markup(fake, start_bot):
    text = "Let me think about that for a moment. " * 6
    await start_bot(
        [text + call("Joke", setup="Knock knock", answer="Who's there?")], delay=1.0, chunk=20
    )
    sent = await fake.post("joke please", mention=True)
    await fake.wait_for(lambda: "Here's a joke" in str(fake.bot_messages(GENERAL, sent["ts"])))
    posts, updates = fake.api("chat.postMessage"), fake.api("chat.update")
    assert "thinking" in posts[0].args["text"]  # the working state, at once
    streamed = [u.args["blocks"][0]["text"]["text"] for u in updates[:-1]]
    assert streamed and all(s.endswith("▌") for s in streamed)
    assert not any("functioncall" in s or "{" in s for s in streamed)
    final = fake.bot_messages(GENERAL, sent["ts"])
    assert len(final) == 1 and "▌" not in str(final)


async def test_a_5000_character_answer_is_split_into_sections_under_slacks_limits(fake, start_bot):
    long = "\n\n".join(f"Paragraph {i}: " + "words and more words " * 12 for i in range(20))
    assert len(long) > 5000
    await start_bot([long])
    sent = await fake.post("write a lot", mention=True)
    await fake.wait_for(
        lambda: "Paragraph 19" in _shown(fake, sent["ts"]) and "▌" not in _shown(fake, sent["ts"])
    )
    messages = fake.bot_messages(GENERAL, sent["ts"])
    sections = [b["text"]["text"] for m in messages for b in m["blocks"]]
    assert len(sections) >= 2 and all(len(s) <= SECTION_LIMIT for s in sections)
    assert all(f"Paragraph {i}:" in " ".join(sections) for i in range(20))
    assert all(check_message(m["text"], m["blocks"]) is None for m in messages)
    assert not _refused(fake)


async def test_a_huge_answer_continues_in_more_messages(fake, start_bot):
    huge = " ".join(f"w{i}" for i in range(12_000))  # about 70,000 characters
    # An interval no run reaches (finishing wakes the streamer): slow generation cannot add updates.
    await start_bot([huge], chunk=2000, stream_update_interval=3600.0)
    sent = await fake.post("more", mention=True)
    await fake.wait_for(
        lambda: "w11999" in _shown(fake, sent["ts"]) and "▌" not in _shown(fake, sent["ts"])
    )
    messages = fake.bot_messages(GENERAL, sent["ts"])
    assert len(messages) >= 3
    # Throttled: one streamed update within the interval, then the final render.
    first_updates = [c for c in fake.api("chat.update") if c.args["ts"] == messages[0]["ts"]]
    assert len(first_updates) <= 2
    assert not _refused(fake)


async def test_hostile_model_text_pings_nobody(fake, start_bot):
    hostile = "<!channel> <!here> <!everyone> <@U0BOB> <!subteam^S0ADMINS|admins> &lt;!here&gt; [x](<!here>)"
    joke = call("Joke", setup="<!here> wake up", answer="<@U0BOB> <!channel>")
    await start_bot([hostile, joke])
    sent = await fake.post("say it", mention=True)
    await fake.wait_for(
        lambda: "everyone" in _shown(fake, sent["ts"]) and "▌" not in _shown(fake, sent["ts"])
    )
    await fake.slash("/joke")
    await fake.wait_for(lambda: any("joke" in m["text"] for m in fake.bot_messages(GENERAL)))
    for call_ in fake.api("chat.postMessage") + fake.api("chat.update"):
        assert pings(call_.args) == [], call_.args


def test_markdown_becomes_mrkdwn():
    assert (
        to_mrkdwn("**bold** and *it* and __b__ and ~~gone~~")
        == "*bold* and _it_ and *b* and ~gone~"
    )
    assert to_mrkdwn("# Title\n- one\n* two") == "*Title*\n• one\n• two"
    assert to_mrkdwn("see [docs](https://x.example/a?b=1&c=2) or https://y.example.") == (
        "see <https://x.example/a?b=1&amp;c=2|docs> or <https://y.example>."
    )
    assert to_mrkdwn("`a**b**` ```\n**x** <y>\n```") == "`a**b**` ```\n**x** &lt;y&gt;\n```"
    assert to_mrkdwn("snake_case_name and 2*3*4") == "snake_case_name and 2*3*4"
    assert to_mrkdwn("R&B <3") == "R&amp;B &lt;3"


async def test_where_the_workspace_has_it_the_thread_status_replaces_the_placeholder(
    fake, start_bot
):
    fake.thread_status = True
    backend = HeldBackend("answered")
    await start_bot(backend=backend)
    sent = await fake.post("hello", mention=True)
    await fake.wait_for(lambda: fake.statuses)
    assert fake.statuses == {(GENERAL, sent["ts"]): "is thinking…"}
    assert fake.bot_messages(GENERAL) == []  # no placeholder
    backend.release.set()
    await fake.wait_for(lambda: "answered" in str(fake.bot_messages(GENERAL, sent["ts"])))
    assert fake.statuses == {}


async def test_without_it_the_placeholder_is_used_and_the_status_is_not_tried_again(
    fake, start_bot
):
    await start_bot(["one", "two"])
    for text in ("first", "second"):
        sent = await fake.post(text, mention=True)
        await fake.wait_for(lambda ts=sent["ts"]: _final(fake, ts))
    assert len(fake.api("assistant.threads.setStatus")) == 1
