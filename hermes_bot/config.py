"""Settings: config.toml, then environment overrides (``HERMES_BOT_`` prefix, ``__`` nesting).

``DISCORD_TOKEN``, ``SLACK_BOT_TOKEN`` and ``SLACK_APP_TOKEN`` are honoured too. Unknown
keys are errors that name the key.
Nothing is read at import time: call :func:`load_settings`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hermes_bot.backend import GenerationParams
from hermes_bot.errors import ConfigError

DEFAULT_MODEL = "teknium/OpenHermes-2.5-Mistral-7B"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSettings(Section):
    id: str = DEFAULT_MODEL
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    device: Literal["auto", "cuda", "cpu", "mps"] = "auto"
    device_map: str | None = "auto"
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] | None = None
    quantization: Literal["none", "4bit", "8bit"] = "none"
    context_window: int = Field(4096, ge=256)
    dialect: Literal["auto", "functioncall", "tool_call"] = "auto"


class GenerationSettings(Section):
    max_new_tokens: int = Field(512, ge=1)
    do_sample: bool = True
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    top_k: int = Field(50, ge=0)
    repetition_penalty: float = Field(1.0, gt=0.0)

    def params(self) -> GenerationParams:
        return GenerationParams(**self.model_dump())


class ExecutorSettings(Section):
    max_batch_size: int = Field(16, ge=1)
    queue_size: int = Field(64, ge=1)
    request_timeout: float = Field(120.0, gt=0)
    batch_wait_ms: float = Field(5.0, ge=0)


class ChatSettings(Section):
    max_message_chars: int = Field(4000, ge=1)
    history_turns: int = Field(20, ge=0)
    corrective_retries: int = Field(1, ge=0)
    constraint: Literal["off", "auto"] = "off"
    system_prompt: str = ""


class DiscordSettings(Section):
    token: SecretStr | None = None
    api_base_url: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg"
    respond_in: list[int] = []
    require_mention: bool = True
    allowed_guilds: list[int] = []
    allowed_channels: list[int] = []
    allowed_roles: list[int] = []
    allowed_users: list[int] = []
    rate_limit_messages: int = Field(5, ge=1)
    rate_limit_seconds: float = Field(30.0, gt=0)
    stream_edit_interval: float = Field(1.0, ge=0.2)
    dev_guild_id: int | None = None
    sync_commands_on_start: bool = False


class SlackSettings(Section):
    bot_token: SecretStr | None = None
    app_token: SecretStr | None = None
    api_base_url: str = "https://slack.com/api/"
    allowed_workspaces: list[str] = []
    allowed_channels: list[str] = []
    allowed_users: list[str] = []
    rate_limit_messages: int = Field(5, ge=1)
    rate_limit_seconds: float = Field(30.0, gt=0)
    stream_update_interval: float = Field(1.0, ge=0.1)
    ping_interval: float = Field(10.0, gt=0)


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(BaseSettings):
    """All of hermes-bot's settings."""

    model_config = SettingsConfigDict(
        env_prefix="HERMES_BOT_", env_nested_delimiter="__", extra="forbid"
    )

    model: ModelSettings = ModelSettings()
    generation: GenerationSettings = GenerationSettings()
    executor: ExecutorSettings = ExecutorSettings()
    chat: ChatSettings = ChatSettings()
    discord: DiscordSettings = DiscordSettings()
    slack: SlackSettings = SlackSettings()
    logging: LoggingSettings = LoggingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first (wins), then what load_settings read from the file.
        return env_settings, init_settings


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def load_settings(path: str | Path | None = None, *, required: bool = False) -> Settings:
    """Read ``path`` (defaults when absent unless ``required``) and apply env overrides."""
    path = Path(path or "config.toml")
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"cannot read config file {path}: {error}") from None
    elif required:
        raise ConfigError(
            f"config file {path} does not exist; copy config.example.toml to {path} "
            "or drop --config to use the defaults"
        )
    token = os.environ.get("DISCORD_TOKEN")
    if token:
        data = _merge(data, {"discord": {"token": token}})
    for variable, key in (("SLACK_BOT_TOKEN", "bot_token"), ("SLACK_APP_TOKEN", "app_token")):
        if os.environ.get(variable):
            data = _merge(data, {"slack": {key: os.environ[variable]}})
    try:
        return Settings(**data)
    except ValidationError as error:
        raise ConfigError(f"invalid configuration in {path}:\n{_describe(error)}") from None
