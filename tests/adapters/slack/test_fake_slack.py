"""The fake Slack itself, driven by the real slack_bolt AsyncApp and slack_sdk clients."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from tests.adapters.slack.block_kit import pings
from tests.adapters.slack.conftest import bolt_app
from tests.adapters.slack.fake_slack import (
    ALICE,
    APP_TOKEN,
    BOT_TOKEN,
    BOT_USER,
    GENERAL,
    dm_channel,
)


def _client(fake, token: str = BOT_TOKEN) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=fake.api_base_url)


async def test_tokens_are_checked_per_method(fake):
    assert (await _client(fake).auth_test())["user_id"] == BOT_USER
    with pytest.raises(SlackApiError, match="not_allowed_token_type"):
        await _client(fake, APP_TOKEN).auth_test()
    with pytest.raises(SlackApiError, match="not_allowed_token_type"):
        await _client(fake).apps_connections_open(app_token=BOT_TOKEN)
    with pytest.raises(SlackApiError, match="invalid_auth"):
        await _client(fake, "xoxb-wrong").chat_postMessage(channel=GENERAL, text="hi")


async def test_connection_urls_work_once(fake):
    url = (await _client(fake).apps_connections_open(app_token=APP_TOKEN))["url"]
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "hello"
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(url)
    assert fake.refused_urls == ["ticket-1"]


async def test_a_mention_arrives_twice_and_every_event_is_acked(fake):
    fake.ack_timeout = None  # count deliveries exactly, however slow the machine
    seen: list[tuple[str, str]] = []
    async with bolt_app(fake) as app:

        @app.event("message")
        async def on_message(event):
            seen.append(("message", event["ts"]))

        @app.event("app_mention")
        async def on_mention(event):
            seen.append(("app_mention", event["ts"]))

        sent = await fake.post("hello there", mention=True)
        await fake.dm("and in private")
        await fake.wait_for(lambda: len(fake.acks("events_api")) == 3)
    assert sorted(seen[:2]) == [("app_mention", sent["ts"]), ("message", sent["ts"])]
    assert len(seen) == 3  # no app_mention in a DM
    first, second = fake.deliveries[:2]
    assert first.payload["event_id"] != second.payload["event_id"]


async def test_an_event_acked_late_is_delivered_again_with_retry_attempt(fake):
    fake.ack_timeout = 0.05
    release = asyncio.Event()
    # process_before_response: the listener runs before the ack, so holding it holds the ack.
    async with bolt_app(fake, process_before_response=True) as app:

        @app.event("message")
        async def on_message():
            await release.wait()

        await fake.post("slow ack please")
        await fake.wait_for(lambda: len(fake.deliveries) >= 2)
        release.set()
        await fake.wait_for(lambda: all(d.acked_at for d in fake.deliveries))
    retry = fake.deliveries[1]
    assert (retry.retry_attempt, retry.retry_reason) == (1, "timeout")
    assert retry.payload["event_id"] == fake.deliveries[0].payload["event_id"]
    assert retry.envelope_id != fake.deliveries[0].envelope_id


async def test_disconnect_makes_the_client_open_a_new_url_and_events_still_arrive(fake):
    fake.ack_timeout = None  # count deliveries exactly, however slow the machine
    seen: list[str] = []
    async with bolt_app(fake) as app:

        @app.event("message")
        async def on_message(event):
            seen.append(event["text"])

        first = fake.open_connections[-1]
        second = await fake.request_refresh()
        assert second.ticket != first.ticket
        await fake.wait_for(lambda: first.ws.closed)
        await fake.post("after the refresh")
        await fake.wait_for(lambda: fake.acks("events_api"))
        third = await fake.drop_connection()
        await fake.post("after the drop")
        await fake.wait_for(lambda: len(seen) == 2)
    assert seen == ["after the refresh", "after the drop"]
    assert third.ticket not in (first.ticket, second.ticket)
    assert len(fake.api("apps.connections.open")) == 3


async def test_unacked_events_on_a_closed_socket_are_redelivered(fake):
    fake.ack_timeout = None
    url = (await _client(fake).apps_connections_open(app_token=APP_TOKEN))["url"]
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            await ws.receive_json(timeout=5)
            await fake.post("never acked")
            envelope = await ws.receive_json(timeout=5)
        assert envelope["retry_attempt"] == 0
        url = (await _client(fake).apps_connections_open(app_token=APP_TOKEN))["url"]
        async with session.ws_connect(url) as ws:
            await ws.receive_json(timeout=5)
            again = await ws.receive_json(timeout=5)
            await ws.send_json({"envelope_id": again["envelope_id"]})
            await fake.wait_for(lambda: fake.deliveries[-1].acked_at)
    assert again["retry_attempt"] == 1 and again["envelope_id"] != envelope["envelope_id"]
    assert again["payload"]["event_id"] == envelope["payload"]["event_id"]


async def test_429_carries_retry_after_and_the_sdk_retries_only_with_a_handler(fake):
    fake.fail("chat.postMessage", times=1, retry_after=0)
    with pytest.raises(SlackApiError) as error:
        await _client(fake).chat_postMessage(channel=GENERAL, text="hi")
    assert error.value.response.status_code == 429
    assert error.value.response.headers["Retry-After"] == "0"
    fake.fail("chat.postMessage", times=1, retry_after=0)
    client = _client(fake)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
    assert (await client.chat_postMessage(channel=GENERAL, text="hi"))["ok"]
    assert [c.result["ok"] for c in fake.api("chat.postMessage")] == [False, False, True]


async def test_block_kit_limits_are_refused_like_slack(fake):
    client = _client(fake)
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x"}}
    too_long = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    button = {"type": "button", "text": {"type": "plain_text", "text": "Go"}, "action_id": "a"}
    cases = {
        "invalid_blocks": [
            [section] * 51,
            [too_long],
            [{"type": "actions", "elements": [button] * 2}],
        ],
        "msg_too_long": [None],
    }
    for error, blocks_list in cases.items():
        for blocks in blocks_list:
            with pytest.raises(SlackApiError, match=error):
                await client.chat_postMessage(
                    channel=GENERAL, text="y" * 40_001 if blocks is None else "t", blocks=blocks
                )
    with pytest.raises(SlackApiError, match="no_text"):
        await client.chat_postMessage(channel=GENERAL, text="")
    ok = await client.chat_postMessage(channel=GENERAL, text="t", blocks=[section] * 50)
    assert fake.bot_messages(GENERAL)[0]["ts"] == ok["ts"]


async def test_the_bots_own_messages_come_back_as_events_that_bolt_skips(fake):
    fake.ack_timeout = None  # count deliveries exactly, however slow the machine
    seen: list[str] = []
    async with bolt_app(fake) as app:

        @app.event("message")
        async def on_message(event):
            seen.append(event.get("subtype") or event["text"])

        posted = await app.client.chat_postMessage(channel=GENERAL, text="from the bot")
        await app.client.chat_update(channel=GENERAL, ts=posted["ts"], text="edited")
        await fake.post("a person")
        await fake.wait_for(lambda: seen)
        await fake.wait_for(lambda: len(fake.acks("events_api")) == 3)
    assert seen[-1] == "a person"
    assert "from the bot" not in seen  # bolt's self-event filter, fed by auth.test


async def test_slash_commands_buttons_and_response_urls(fake):
    async with bolt_app(fake) as app:

        @app.command("/joke")
        async def joke(ack, respond):
            await ack()
            await respond(
                text="card",
                response_type="in_channel",
                blocks=[
                    {
                        "type": "actions",
                        "elements": [
                            {
                                "type": "button",
                                "action_id": "again",
                                "value": "v",
                                "text": {"type": "plain_text", "text": "Again"},
                            },
                        ],
                    },
                ],
            )

        clicked: list[str] = []

        @app.action("again")
        async def again(ack, body, respond):
            await ack()
            clicked.append(body["actions"][0]["value"])
            await respond(text="just for you")

        await fake.slash("/joke", "cats")
        card = (await fake.wait_for(lambda: fake.bot_messages(GENERAL)))[0]
        await fake.click(card, "again")
        await fake.wait_for(lambda: fake.ephemerals_for(ALICE))
        await fake.wait_for(lambda: fake.acks("slash_commands") and fake.acks("interactive"))
    assert clicked == ["v"]
    assert fake.ephemerals_for(ALICE)[0]["text"] == "just for you"


async def test_deleting_a_message_sends_message_deleted(fake):
    async with bolt_app(fake) as app:
        deleted: list[str] = []

        @app.event({"type": "message", "subtype": "message_deleted"})
        async def on_delete(event):
            deleted.append(event["deleted_ts"])

        @app.event("message")
        async def on_message():
            pass

        sent = await fake.dm("oops")
        await fake.delete(sent)
        await fake.wait_for(lambda: deleted)
    assert deleted == [sent["ts"]] and sent["channel"] == dm_channel(ALICE)


def test_pings_sees_special_mentions_but_not_escaped_ones():
    assert pings({"text": "hey <!here> and <@U0BOB|bob> <!subteam^S1|devs>"}) == [
        "!here",
        "@U0BOB",
        "!subteam^S1",
    ]
    assert pings({"text": "&lt;!channel&gt; <https://x.example|link>"}) == []
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "<!everyone>"}}
    assert pings({"text": "", "blocks": [section]}) == ["!everyone"]
