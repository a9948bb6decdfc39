"""The fake Discord itself: gateway handshake, heartbeats, resume, REST routes and recording."""

from __future__ import annotations

import json

import aiohttp

from tests.adapters.discord.fake_discord import (
    GENERAL_ID,
    GUILD_ID,
    OTHER_GUILD_ID,
    THREAD_ID,
    TOKEN,
)

AUTH = {"Authorization": f"Bot {TOKEN}"}


async def _frame(ws: aiohttp.ClientWebSocketResponse) -> dict:
    msg = await ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.TEXT
    return json.loads(msg.data)


async def _identify(ws):
    await ws.send_json({"op": 2, "d": {"token": TOKEN, "intents": 1 << 15, "properties": {}}})
    ready = await _frame(ws)
    guilds = [await _frame(ws), await _frame(ws)]
    return ready, guilds


async def test_gateway_hello_identify_ready_guild_create_and_heartbeat_ack(fake):
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(fake.gateway_url + "?v=10&encoding=json&compress=zlib-stream") as ws,
    ):
        hello = await _frame(ws)
        assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] > 0
        await ws.send_json({"op": 1, "d": None})
        assert (await _frame(ws))["op"] == 11
        ready, guilds = await _identify(ws)
    assert ready["t"] == "READY" and ready["s"] == 1
    assert ready["d"]["resume_gateway_url"] == fake.gateway_url
    assert [g["t"] for g in guilds] == ["GUILD_CREATE", "GUILD_CREATE"]
    assert [g["s"] for g in guilds] == [2, 3]
    assert all(m["flags"] == 0 for g in guilds for m in g["d"]["members"])
    assert fake.heartbeats == 1
    assert fake.gateway_queries[0]["compress"] == "zlib-stream"


async def test_gateway_resume_replays_missed_events_and_rejects_unknown_sessions(fake):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(fake.gateway_url) as ws:
            await _frame(ws)
            ready, _ = await _identify(ws)
            await fake.send_op(7)
            assert (await _frame(ws))["op"] == 7
        await fake.send_message("while away")
        async with session.ws_connect(fake.gateway_url) as ws:
            await _frame(ws)
            await ws.send_json(
                {"op": 6, "d": {"token": TOKEN, "seq": 3, "session_id": ready["d"]["session_id"]}}
            )
            replayed = await _frame(ws)
            resumed = await _frame(ws)
        async with session.ws_connect(fake.gateway_url) as ws:
            await _frame(ws)
            await ws.send_json({"op": 6, "d": {"token": TOKEN, "seq": 1, "session_id": "nope"}})
            invalid = await _frame(ws)
    assert replayed["t"] == "MESSAGE_CREATE" and replayed["s"] == 4
    assert replayed["d"]["content"].endswith("while away")
    assert resumed["t"] == "RESUMED"
    assert invalid == {"op": 9, "d": False}


async def test_rest_needs_the_bot_token_answers_plain_json_and_records_payloads(fake):
    async with aiohttp.ClientSession() as session:
        async with session.get(fake.api_base_url + "/users/@me") as response:
            assert response.status == 401
        async with session.get(fake.api_base_url + "/users/@me", headers=AUTH) as response:
            assert response.headers["Content-Type"] == "application/json"
            me = await response.json()
        url = f"{fake.api_base_url}/channels/{GENERAL_ID}/messages"
        async with session.post(url, json={"content": "hi"}, headers=AUTH) as response:
            created = await response.json()
        async with session.patch(
            f"{url}/{created['id']}", json={"content": "edited"}, headers=AUTH
        ) as response:
            assert response.status == 200
    assert me["bot"] is True
    assert [(c.method, c.path) for c in fake.calls][-2:] == [
        ("POST", f"/channels/{GENERAL_ID}/messages"),
        ("PATCH", f"/channels/{GENERAL_ID}/messages/{created['id']}"),
    ]
    assert fake.calls[-2].json == {"content": "hi"}
    assert fake.bot_messages(GENERAL_ID)[0]["content"] == "edited"


async def test_interaction_callbacks_need_no_token_and_return_interaction_and_resource(fake):
    interaction = await fake.slash("joke")
    url = f"{fake.api_base_url}/interactions/{interaction['id']}/{interaction['token']}/callback"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={"type": 5, "data": {}}) as response,
    ):
        body = await response.json()
    assert body["interaction"]["id"] == interaction["id"]
    assert body["interaction"]["response_message_loading"] is True
    assert body["resource"]["type"] == 5
    assert interaction["attachment_size_limit"] > 0
    assert interaction["member"]["flags"] == 0


async def test_the_real_client_sees_guilds_channels_threads_and_roles(fake, start_bot):
    run = await start_bot([])
    bot = run.bot
    assert {g.id for g in bot.guilds} == {GUILD_ID, OTHER_GUILD_ID}
    guild = bot.get_guild(GUILD_ID)
    assert guild.get_channel(GENERAL_ID).name == "general"
    assert guild.get_thread(THREAD_ID).parent_id == GENERAL_ID
    assert {r.name for r in guild.roles} >= {"@everyone", "member", "vip"}
    assert fake.identifies[0]["intents"] & (1 << 15)
    assert fake.heartbeats >= 1
