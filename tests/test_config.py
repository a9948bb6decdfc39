"""Settings: file, environment overrides, errors naming the bad key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from hermes_bot.config import Settings, load_settings
from hermes_bot.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    settings = load_settings(tmp_path / "absent.toml")
    assert settings.model.id == "teknium/OpenHermes-2.5-Mistral-7B"
    assert settings.discord.token is None


def test_example_documents_every_key_with_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    assert load_settings(EXAMPLE, required=True) == Settings()
    text = EXAMPLE.read_text()
    documented = set(re.findall(r"^#? ?(\w+) = ", text, re.MULTILINE))
    for section, model in Settings.model_fields.items():
        assert f"[{section}]" in text
        for key in model.annotation.model_fields:  # type: ignore[union-attr]
            assert key in documented, f"{section}.{key} is not in config.example.toml"
    tomllib.loads(text)


def test_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[model]\nid = "from-file"\n[executor]\nqueue_size = 8\n')
    monkeypatch.setenv("HERMES_BOT_MODEL__ID", "from-env")
    monkeypatch.setenv("DISCORD_TOKEN", "secret-token-value")
    settings = load_settings(path)
    assert settings.model.id == "from-env"
    assert settings.executor.queue_size == 8
    assert settings.discord.token is not None
    assert settings.discord.token.get_secret_value() == "secret-token-value"
    assert "secret-token-value" not in repr(settings) + str(settings.model_dump())


def test_misspelt_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[model]\nmodel_id = 'x'\n[chat]\nmax_mesage_chars = 5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "model.model_id: unknown key" in str(caught.value)
    assert "chat.max_mesage_chars: unknown key" in str(caught.value)


def test_bad_value_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[executor]\nqueue_size = 0\n")
    with pytest.raises(ConfigError, match=r"executor\.queue_size"):
        load_settings(path)


def test_missing_file_given_explicitly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", required=True)


def test_unparsable_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[model\n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(path)
