"""Start-up against Discord: unreachable is retried then a one-line error; no voice warnings."""

from __future__ import annotations

import asyncio
import logging
import socket

import discord
import pytest

from hermes_bot.adapters.discord import HermesDiscordBot, run_discord, startup
from hermes_bot.cli import _fail, setup_logging
from hermes_bot.config import Settings
from hermes_bot.errors import ConfigError, PlatformError
from hermes_bot.pipeline import Pipeline
from tests.adapters.discord.fake_discord import TOKEN, FakeDiscord
from tests.fakes import ScriptedBackend


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_unreachable_discord_is_retried_with_one_line_each_then_a_clear_error(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(startup, "FIRST_DELAY", 0.05)
    port = _closed_port()
    settings = Settings(
        discord={
            "token": "MTIz.fake.token",
            "api_base_url": f"http://127.0.0.1:{port}/api/v10",
            "gateway_url": f"ws://127.0.0.1:{port}",
            "connect_timeout": 0.5,
        }
    )
    backend = ScriptedBackend([])
    with caplog.at_level(logging.WARNING), pytest.raises(PlatformError) as caught:
        await run_discord(settings, Pipeline.from_settings(backend, settings))
    retries = [r for r in caplog.records if r.getMessage().startswith("cannot reach Discord")]
    assert len(retries) >= 2
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in retries)
    assert [int(r.getMessage().split("attempt ")[1].split()[0]) for r in retries] == list(
        range(1, len(retries) + 1)
    )
    message = caught.value.user_message
    assert message.startswith("Cannot reach Discord") and "\n" not in message
    assert "check the network" in message.lower()
    assert not backend.started  # the model is loaded only once Discord accepted the token


def test_no_voice_warnings(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discord.VoiceClient, "warn_nacl", True)
    monkeypatch.setattr(discord.VoiceClient, "warn_dave", True)
    settings = Settings()
    with caplog.at_level(logging.DEBUG):
        HermesDiscordBot(settings, Pipeline.from_settings(ScriptedBackend([]), settings))
    assert "voice" not in caplog.text.lower()


def test_a_rejected_token_is_one_line(capsys: pytest.CaptureFixture) -> None:
    _fail(ConfigError("Discord rejected the token", user_message="Discord rejected the token."))
    assert capsys.readouterr().err == "hermes-bot: Discord rejected the token.\n"


def test_gateway_reconnect_tracebacks_become_one_line(capsys: pytest.CaptureFixture) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO")
        try:
            raise OSError("Connect call failed ('127.0.0.1', 9)")
        except OSError:
            logging.getLogger("discord.client").exception("Attempting a reconnect in %.2fs", 1.5)
    finally:
        logging.captureWarnings(False)
        root.handlers[:], root.level = saved
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith("Attempting a reconnect in 1.50s (Connect call failed ('127.0.0.1', 9))")


async def test_an_unreachable_gateway_is_retried_for_a_bounded_time(
    fake: FakeDiscord, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        discord={
            "token": TOKEN,
            "api_base_url": fake.api_base_url,
            "gateway_url": f"ws://127.0.0.1:{_closed_port()}",
            "connect_timeout": 0.5,
        }
    )
    backend = ScriptedBackend([])
    monkeypatch.setattr(startup, "FIRST_DELAY", 0.05)
    with caplog.at_level(logging.INFO), pytest.raises(PlatformError) as caught:
        # Without the bound discord.py retries forever: the wait_for turns that into a failure.
        await asyncio.wait_for(run_discord(settings, Pipeline.from_settings(backend, settings)), 60)
    assert backend.started  # logged in: the model was loaded
    retries = [r for r in caplog.records if r.getMessage().startswith("cannot reach Discord's")]
    assert retries and all(r.exc_info is None for r in retries)
    message = caught.value.user_message
    assert message.startswith("Cannot reach Discord's gateway") and "\n" not in message
