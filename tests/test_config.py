"""Settings: file, environment overrides, errors naming the bad key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from hermes_bot.config import Settings
from hermes_bot.config_loader import load_settings
from hermes_bot.config_sources import find_config_file
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
    assert f"model.model_id: unknown key (config file {path})" in str(caught.value)
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


def refused(tmp_path: Path, text: str) -> tuple[Path, str]:
    """The config file holding ``text`` (no environment) and the ConfigError it raises."""
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    return path, str(caught.value)


def test_an_answer_that_leaves_no_room_for_the_prompt_is_an_error(tmp_path: Path) -> None:
    path, message = refused(tmp_path, "[generation]\nmax_new_tokens = 8192\n")
    assert "generation.max_new_tokens + model.context_window" in message
    assert f"generation.max_new_tokens: config file {path}" in message
    assert "model.context_window: default" in message
    assert "at most 3584" in message


def test_a_kv_cache_smaller_than_one_request_is_an_error(tmp_path: Path) -> None:
    _, message = refused(tmp_path, "[executor]\nkv_cache_tokens = 1000\n")
    assert "executor.kv_cache_tokens + model.context_window" in message
    assert "at least 4096" in message


def test_quantization_on_the_cpu_is_an_error() -> None:
    environ = {"HERMES_BOT_MODEL__QUANTIZATION": "4bit", "HERMES_BOT_MODEL__DEVICE": "cpu"}
    with pytest.raises(ConfigError, match=r"model\.quantization \+ model\.device: .*needs a CUDA"):
        load_settings(None, environ=environ)


def test_a_misspelt_environment_variable_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ={"HERMES_BOT_MODLE__ID": "x", "HERMES_BOT_CHAT__FOO": "1"})
    message = str(caught.value)
    assert "HERMES_BOT_MODLE__ID: no such setting; did you mean HERMES_BOT_MODEL__ID?" in message
    assert "HERMES_BOT_CHAT__FOO: no such setting" in message


def test_a_bad_environment_value_is_blamed_on_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[executor]\nqueue_size = 8\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={"HERMES_BOT_EXECUTOR__QUEUE_SIZE": "0"})
    [line] = str(caught.value).splitlines()[1:]
    assert "executor.queue_size" in line
    assert "environment variable HERMES_BOT_EXECUTOR__QUEUE_SIZE" in line
    assert str(path) not in line


def test_one_line_per_invalid_value_naming_its_source(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[model]\ndtype = 'half'\n[chat]\nhistory_turns = -1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={}, overrides={"model.device": ("--device", "gpu")})
    lines = str(caught.value).splitlines()[1:]
    assert len(lines) == 3
    assert any("model.device" in x and "'gpu'" in x and "option --device" in x for x in lines)
    assert any("model.dtype" in x and "'half'" in x and str(path) in x for x in lines)
    assert any("chat.history_turns" in x and str(path) in x for x in lines)
    assert "http" not in str(caught.value)


def test_choices_are_case_insensitive_and_lists_come_as_json() -> None:
    environ = {
        "HERMES_BOT_LOGGING__LEVEL": "info",
        "hermes_bot_model__device": "CPU",
        "HERMES_BOT_MODEL__DTYPE": "Float32",
        "HERMES_BOT_DISCORD__ALLOWED_USERS": "[1, 2]",
    }
    settings = load_settings(None, environ=environ)
    assert settings.logging.level == "INFO"
    assert (settings.model.device, settings.model.dtype) == ("cpu", "float32")
    assert settings.discord.allowed_users == [1, 2]
    with pytest.raises(ConfigError, match="HERMES_BOT_DISCORD__RESPOND_IN: not valid JSON"):
        load_settings(None, environ={"HERMES_BOT_DISCORD__RESPOND_IN": "1,2"})


def test_the_config_file_is_found_in_the_cwd_then_the_user_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, home = tmp_path / "work", tmp_path / "xdg"
    work.mkdir()
    (home / "hermes-bot").mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    found = find_config_file()
    assert found.path is None
    assert str(work / "config.toml") in found.describe()
    assert str(home / "hermes-bot" / "config.toml") in found.describe()
    (home / "hermes-bot" / "config.toml").write_text("")
    assert find_config_file().path == home / "hermes-bot" / "config.toml"
    assert "user config directory" in find_config_file().describe()
    (work / "config.toml").write_text("")
    assert find_config_file().path == work / "config.toml"
    assert "current directory" in find_config_file().describe()
    assert find_config_file("other.toml").path == Path("other.toml")


def test_slack_tokens_from_the_environment_are_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[slack]\nbot_token = "xoxb-from-file"\n')
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-env")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-from-env")
    settings = load_settings(path)
    assert settings.slack.bot_token is not None and settings.slack.app_token is not None
    assert settings.slack.bot_token.get_secret_value() == "xoxb-from-env"
    assert settings.slack.app_token.get_secret_value() == "xapp-from-env"
    assert "from-env" not in repr(settings) + str(settings.model_dump())


@pytest.mark.parametrize("section, key", [("remote", "api_key"), ("slack", "bot_token")])
def test_an_invalid_secret_is_not_echoed(tmp_path: Path, section: str, key: str) -> None:
    _, message = refused(tmp_path, f"[{section}]\n{key} = 987654321\n")
    assert f"{section}.{key}" in message
    assert "987654321" not in message


def test_a_remote_url_with_credentials_is_refused_without_echoing_them(tmp_path: Path) -> None:
    _, message = refused(tmp_path, '[remote]\nurls = ["http://bot:hunter2@10.0.0.5:8000/v1"]\n')
    assert "remote.urls: " in message and "remote.api_key" in message
    assert "hunter2" not in message
