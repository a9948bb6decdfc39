"""bot.py serving Discord and Slack from one process with one model load, against both fakes."""

from __future__ import annotations

import asyncio
import atexit
import gc
import os
import signal
from pathlib import Path

import pytest

from hermes_bot.adapters.platforms import configured_platforms, serve
from hermes_bot.config import DiscordSettings, Settings, SlackSettings
from hermes_bot.errors import ConfigError
from hermes_bot.pipeline import Pipeline
from tests.adapters.discord.conftest import spawn_against
from tests.adapters.discord.fake_discord import GENERAL_ID, TOKEN, FakeDiscord
from tests.adapters.slack.fake_slack import (
    ALICE,
    APP_TOKEN,
    BOT_TOKEN,
    GENERAL,
    FakeSlack,
    dm_channel,
)
from tests.fakes import ScriptedBackend


def test_configured_platforms_follow_the_tokens():
    assert configured_platforms(Settings()) == []
    both = Settings(
        discord=DiscordSettings(token="d"), slack=SlackSettings(bot_token="b", app_token="a")
    )
    assert configured_platforms(both) == ["discord", "slack"]
    assert configured_platforms(Settings(slack=SlackSettings(app_token="a"))) == ["slack"]
    assert configured_platforms(Settings(discord=DiscordSettings(token=" "))) == []


def _finished(messages) -> bool:
    """Some bot messages, none of them a placeholder or still streaming."""
    return bool(messages) and "thinking…" not in str(messages) and "▌" not in str(messages)


@pytest.fixture
async def fakes():
    discord, slack = await FakeDiscord().start(), await FakeSlack().start()
    try:
        yield discord, slack
    finally:
        await discord.close()
        await slack.close()


async def test_bot_py_serves_discord_and_slack_with_one_model_and_exits_0_on_sigterm(
    fakes, tiny_model_dir: Path, tmp_path: Path
):
    discord, slack = fakes
    config = tmp_path / "config.toml"
    config.write_text(
        f'[model]\nid = "{tiny_model_dir}"\ndevice = "cpu"\ndtype = "float32"\n'
        "context_window = 2048\n[generation]\nmax_new_tokens = 4\ndo_sample = false\n"
        "[chat]\ncorrective_retries = 0\n",
        encoding="utf-8",
    )
    process = await spawn_against(
        discord,
        "bot.py",
        "--config",
        str(config),
        OMP_NUM_THREADS="1",
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_APP_TOKEN=APP_TOKEN,
        HERMES_BOT_SLACK__API_BASE_URL=slack.api_base_url,
    )
    try:
        await discord.wait_for(lambda: discord.ready.is_set() and slack.open_connections, 90)
        await discord.send_message("hello from Discord")
        sent = await slack.post("hello from Slack", mention=True)

        await slack.wait_for(lambda: _finished(slack.bot_messages(GENERAL, sent["ts"])), 60)
        await slack.dm("and in private")
        await slack.slash("/chat", "a slash command")
        await slack.wait_for(
            lambda: (
                _finished(slack.bot_messages(dm_channel(ALICE)))
                and _finished([m for m in slack.bot_messages(GENERAL) if "thread_ts" not in m])
            ),
            timeout=60,
        )
        [discord_reply] = await discord.wait_for(
            lambda: (m := discord.bot_messages(GENERAL_ID)) and "▌" not in m[0]["content"] and m,
            60,
        )
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
    output = stdout.decode() + stderr.decode()
    assert process.returncode == 0, output[-2000:]
    assert output.count(f"loaded {tiny_model_dir} on") == 1  # one model for both platforms
    assert "serving discord and slack" in output
    # The model answered every time (a failing generation shows a "⚠️" reply).
    slack_replies = slack.bot_messages(GENERAL) + slack.bot_messages(dm_channel(ALICE))
    assert len(slack_replies) >= 3
    assert not any(m["text"].startswith("⚠️") for m in slack_replies), slack_replies
    assert not discord_reply["content"].startswith("⚠️"), discord_reply["content"]
    assert discord_reply["content"].strip() or discord_reply["embeds"]
    assert "inference worker stopped" in output
    for secret in (TOKEN, BOT_TOKEN, APP_TOKEN):
        assert secret not in output


async def test_sigterm_leaves_a_notice_on_answers_in_flight_and_serve_returns_0(fakes, monkeypatch):
    at_exit: list[object] = []
    monkeypatch.setattr(atexit, "register", at_exit.append)
    _, slack = fakes
    settings = Settings(
        slack=SlackSettings(
            bot_token=BOT_TOKEN, app_token=APP_TOKEN, api_base_url=slack.api_base_url
        )
    )
    backend = ScriptedBackend(["A very slow answer " * 20], delay=60.0, chunk=4)
    pipeline = Pipeline.from_settings(backend, settings)
    server = asyncio.create_task(serve(settings, pipeline, configured_platforms(settings)))
    await slack.wait_for(lambda: slack.open_connections)
    sent = await slack.post("say something slowly", mention=True)
    await slack.wait_for(lambda: slack.bot_messages(GENERAL, sent["ts"]))
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(server, 30) == 0
    [message] = slack.bot_messages(GENERAL, sent["ts"])
    assert "restarting" in str(message["blocks"]) and "▌" not in str(message["blocks"])
    assert backend.started and not slack.open_connections
    # A Slack-only process exits promptly too: the interpreter's last collection is skipped.
    assert gc.freeze in at_exit


async def test_a_rejected_discord_token_stops_slack_too_and_says_what_to_fix(fakes):
    discord, slack = fakes
    settings = Settings(
        discord=discord.settings(token="revoked"),
        slack=SlackSettings(
            bot_token=BOT_TOKEN, app_token=APP_TOKEN, api_base_url=slack.api_base_url
        ),
    )
    pipeline = Pipeline.from_settings(ScriptedBackend(), settings)
    with pytest.raises(ConfigError) as error:
        await asyncio.wait_for(serve(settings, pipeline, ["discord", "slack"]), 30)
    assert "DISCORD_TOKEN" in error.value.user_message
    await slack.wait_for(lambda: not slack.open_connections)
