"""Settings: the config file, then environment overrides, then command-line options.

Environment variables are ``HERMES_BOT_<SECTION>__<KEY>``; ``DISCORD_TOKEN``,
``SLACK_BOT_TOKEN`` and ``SLACK_APP_TOKEN`` are honoured too (config_sources.TOKEN_VARIABLES).
The file is ``--config PATH``, else ``./config.toml``, else ``config.toml`` in the
user config directory (config_sources.user_config_dir).
The whole configuration is validated at start-up: unknown keys and variables,
invalid values and impossible combinations are errors that name the key and
where its value came from. This module is the schema; config_loader.load_settings
reads and checks it (nothing is read at import time).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
)

from hermes_bot.backend import GenerationParams

DEFAULT_MODEL = "teknium/OpenHermes-2.5-Mistral-7B"


def _folded(case: Callable[[str], str]) -> BeforeValidator:
    return BeforeValidator(lambda value: case(value.strip()) if isinstance(value, str) else value)


# Choices are matched case-insensitively: Annotated[Literal["a", "b"], Lower].
Lower = _folded(str.lower)
Upper = _folded(str.upper)
# The serving engines the remote backend knows the request fields of.
EngineName = Literal["vllm", "sglang", "llama.cpp", "ollama", "tgi", "generic"]


class Section(BaseModel):
    """One ``[section]`` of config.toml: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class ModelSettings(Section):
    """``[model]``: which model, and how it is loaded."""

    id: str = DEFAULT_MODEL
    dtype: Annotated[Literal["auto", "float16", "bfloat16", "float32"], Lower] = "auto"
    device: Annotated[Literal["auto", "cuda", "cpu", "mps"], Lower] = "auto"
    device_map: str | None = "auto"
    attn_implementation: Annotated[Literal["sdpa", "eager", "flash_attention_2"] | None, Lower] = (
        None
    )
    quantization: Annotated[Literal["none", "4bit", "8bit"], Lower] = "none"
    context_window: int = Field(4096, ge=256)
    dialect: Annotated[Literal["auto", "functioncall", "tool_call"], Lower] = "auto"


class GenerationSettings(Section):
    """``[generation]``: the default sampling parameters."""

    max_new_tokens: int = Field(512, ge=1)
    do_sample: bool = True
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    top_k: int = Field(50, ge=0)
    repetition_penalty: float = Field(1.0, gt=0.0)

    def params(self) -> GenerationParams:
        """These settings as the backends' GenerationParams."""
        return GenerationParams(**self.model_dump())


class ExecutorSettings(Section):
    """``[executor]``: the in-process backend's batching, KV cache and queue."""

    max_batch_size: int = Field(16, ge=1)
    queue_size: int = Field(64, ge=1)
    request_timeout: float = Field(120.0, gt=0)
    batch_wait_ms: float = Field(5.0, ge=0)
    prefill_chunk: int = Field(512, ge=16)
    prefix_cache_tokens: int = Field(8192, ge=0)
    kv_cache_tokens: int = Field(0, ge=0)
    compile: bool = False


class ChannelPrompt(Section):
    """Extra instructions for one channel (a thread inherits its parent's)."""

    id: Annotated[str, BeforeValidator(str)]
    instructions: str


class ChatSettings(Section):
    """``[chat]``: system prompt, history, message limits, retries, constraints."""

    max_message_chars: int = Field(4000, ge=1)
    history_turns: int = Field(20, ge=0)
    corrective_retries: int = Field(1, ge=0)
    constraint: Annotated[Literal["off", "auto"], Lower] = "off"
    system_prompt: str = ""
    channel: list[ChannelPrompt] = []


class StorageSettings(Section):
    """``[storage]``: where histories are kept, and for how long."""

    backend: Literal["sqlite", "memory"] = "sqlite"
    path: Path = Path("data/conversations.db")
    max_age_days: float = Field(30.0, ge=0)
    memory_conversations: int = Field(10_000, ge=1)
    memory_megabytes: float = Field(64.0, gt=0)


class PlatformSettings(Section):
    """What every platform section has: the per-user rate limit (messages per window)."""

    rate_limit_messages: int = Field(5, ge=1)
    rate_limit_seconds: float = Field(30.0, gt=0)


class DiscordSettings(PlatformSettings):
    """``[discord]``: the token, where the bot answers, who may use it."""

    token: SecretStr | None = None
    api_base_url: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg"
    respond_in: list[int] = []
    require_mention: bool = True
    allowed_guilds: list[int] = []
    allowed_channels: list[int] = []
    allowed_roles: list[int] = []
    allowed_users: list[int] = []
    stream_edit_interval: float = Field(1.0, ge=0.2)
    dev_guild_id: int | None = None
    sync_commands_on_start: bool = False
    connect_timeout: float = Field(120.0, gt=0)
    # discord.py's AutoShardedBot: as many gateway connections as Discord recommends.
    sharding: bool = False
    auto_thread: bool = False


class SlackSettings(PlatformSettings):
    """``[slack]``: the tokens and who may use the bot."""

    bot_token: SecretStr | None = None
    app_token: SecretStr | None = None
    api_base_url: str = "https://slack.com/api/"
    allowed_workspaces: list[str] = []
    allowed_channels: list[str] = []
    allowed_users: list[str] = []
    stream_update_interval: float = Field(1.0, ge=0.1)
    ping_interval: float = Field(10.0, gt=0)


class RemoteSettings(Section):
    """OpenAI-compatible inference servers; non-empty ``urls`` replaces the local model."""

    urls: list[str] = []
    api_key: SecretStr | None = None
    model: str | None = None
    engine: Literal["auto", EngineName] = "auto"
    tokenizer: str | None = None
    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(60.0, gt=0)
    request_timeout: float = Field(300.0, gt=0)
    probe_interval: float = Field(10.0, gt=0)

    @field_validator("urls")
    @classmethod
    def _base_urls(cls, urls: list[str]) -> list[str]:
        cleaned = [url.strip().rstrip("/") for url in urls]
        for url in cleaned:
            if "@" in urlsplit(url).netloc:
                raise ValueError(
                    "a URL holds credentials, which would be logged; use remote.api_key"
                )
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL such as http://127.0.0.1:8000/v1")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("a URL is listed twice")
        return cleaned


class LoggingSettings(Section):
    """``[logging]``: level, file and format of the log."""

    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], Upper] = "INFO"
    # Unset: stderr, except in the console, which logs to <user log dir>/console.log.
    file: Path | None = None
    format: Annotated[Literal["text", "json"], Lower] = "text"


class MetricsSettings(Section):
    """``[metrics]``: the Prometheus / health endpoint and the periodic log line."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=1, le=65535)
    log_interval: float = Field(60.0, ge=0)
    stuck_after: float = Field(300.0, gt=0)


class Settings(Section):
    """All of hermes-bot's settings (one section per table of config.toml)."""

    model: ModelSettings = ModelSettings()
    generation: GenerationSettings = GenerationSettings()
    executor: ExecutorSettings = ExecutorSettings()
    chat: ChatSettings = ChatSettings()
    discord: DiscordSettings = DiscordSettings()
    slack: SlackSettings = SlackSettings()
    remote: RemoteSettings = RemoteSettings()
    logging: LoggingSettings = LoggingSettings()
    storage: StorageSettings = StorageSettings()
    metrics: MetricsSettings = MetricsSettings()
