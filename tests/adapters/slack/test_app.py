"""Start-up: tokens checked before connecting, each failure says what to fix; run_slack stops."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from hermes_bot.adapters.slack import run_slack
from hermes_bot.adapters.slack.commands import command_names
from hermes_bot.config import Settings, SlackSettings
from hermes_bot.errors import ConfigError
from hermes_bot.pipeline import Pipeline
from tests.adapters.slack.fake_slack import APP_TOKEN, BOT_TOKEN, GENERAL
from tests.fakes import ScriptedBackend

ROOT = Path(__file__).resolve().parents[3]


def _settings(fake, bot_token=BOT_TOKEN, app_token=APP_TOKEN) -> Settings:
    slack = SlackSettings(bot_token=bot_token, app_token=app_token, api_base_url=fake.api_base_url)
    return Settings(slack=slack)


@pytest.mark.parametrize(
    ("bot_token", "app_token", "advice"),
    [
        (None, APP_TOKEN, "SLACK_BOT_TOKEN (xoxb-...) and SLACK_APP_TOKEN"),
        ("xoxb-wrong", APP_TOKEN, "Check SLACK_BOT_TOKEN"),
        (BOT_TOKEN, BOT_TOKEN, "Check SLACK_APP_TOKEN"),
    ],
)
async def test_a_missing_or_rejected_token_is_a_config_error_that_says_what_to_do(
    fake, bot_token, app_token, advice
):
    pipeline = Pipeline.from_settings(ScriptedBackend(), Settings())
    with pytest.raises(ConfigError) as error:
        await run_slack(_settings(fake, bot_token, app_token), pipeline, asyncio.Event())
    assert advice in error.value.user_message
    assert fake.connections == []


async def test_run_slack_answers_until_stopped_then_closes(fake):
    backend = ScriptedBackend(["hi!"])
    stop = asyncio.Event()
    settings = _settings(fake)
    runner = asyncio.create_task(
        run_slack(settings, Pipeline.from_settings(backend, settings), stop)
    )
    await fake.wait_for(lambda: fake.open_connections)
    await fake.post("hello", mention=True)
    await fake.wait_for(lambda: "hi!" in str(fake.bot_messages(GENERAL)))
    stop.set()
    assert await asyncio.wait_for(runner, 10) == 0
    await fake.wait_for(lambda: not fake.open_connections)


def test_the_app_manifest_matches_what_the_adapter_serves():
    manifest = json.loads((ROOT / "deploy" / "slack-app-manifest.json").read_text())
    commands = [c["command"].lstrip("/") for c in manifest["features"]["slash_commands"]]
    assert commands == command_names()
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] and settings["interactivity"]["is_enabled"]
    assert {"app_mention", "message.channels", "message.im"} <= set(
        settings["event_subscriptions"]["bot_events"]
    )
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {
        "chat:write",
        "commands",
        "reactions:write",
        "users:read",
        "app_mentions:read",
    } <= scopes
