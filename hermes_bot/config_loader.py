"""Loading the settings: the sources layered, the schema validated, then the whole checked.

Each problem names the keys involved and where their values came from; a
check of settings that are valid alone but impossible together is registered
with :func:`combination_check`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hermes_bot.config import Settings
from hermes_bot.config_sources import Layers, add_environment, describe, read_file
from hermes_bot.errors import ConfigError

# Tokens a prompt needs at least: the system prompt with the function schemas and a message.
MIN_PROMPT_TOKENS = 512

# Checks of the configuration as a whole: each yields (the keys involved, what is wrong).
Problem = tuple[tuple[str, ...], str]
COMBINATION_CHECKS: list[Callable[[Settings], Iterator[Problem]]] = []


def combination_check(
    check: Callable[[Settings], Iterator[Problem]],
) -> Callable[[Settings], Iterator[Problem]]:
    """Register a check of settings that are valid alone but impossible together."""
    COMBINATION_CHECKS.append(check)
    return check


@combination_check
def _prompt_fits(settings: Settings) -> Iterator[Problem]:
    window, answer = settings.model.context_window, settings.generation.max_new_tokens
    if window - answer < MIN_PROMPT_TOKENS:
        yield (
            ("generation.max_new_tokens", "model.context_window"),
            f"an answer of up to {answer} tokens leaves {max(window - answer, 0)} of the "
            f"{window}-token context window for the prompt, which needs at least "
            f"{MIN_PROMPT_TOKENS}; lower generation.max_new_tokens to at most "
            f"{window - MIN_PROMPT_TOKENS} or raise model.context_window",
        )


@combination_check
def _kv_cache_holds_a_request(settings: Settings) -> Iterator[Problem]:
    tokens, window = settings.executor.kv_cache_tokens, settings.model.context_window
    if 0 < tokens < window:
        yield (
            ("executor.kv_cache_tokens", "model.context_window"),
            f"a KV cache of {tokens} tokens cannot hold one request of the {window}-token "
            f"context window; set executor.kv_cache_tokens to at least {window}, or 0 for "
            f"room for every request at the full window",
        )


@combination_check
def _quantization_device(settings: Settings) -> Iterator[Problem]:
    model = settings.model
    if model.quantization != "none" and model.device in ("cpu", "mps"):
        yield (
            ("model.quantization", "model.device"),
            f"quantization {model.quantization!r} needs a CUDA GPU but the device is "
            f"{model.device!r}; set model.quantization = 'none' or model.device = 'cuda'",
        )


def _combination_errors(settings: Settings, layers: Layers) -> list[str]:
    lines = []
    for check in COMBINATION_CHECKS:
        for keys, message in check(settings):
            sources = "; ".join(f"{key}: {layers.origin(key.split('.'))}" for key in keys)
            lines.append(f"{' + '.join(keys)}: {message} ({sources})")
    return lines


def load_settings(
    path: str | Path | None = None,
    *,
    required: bool = False,
    overrides: Mapping[str, tuple[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read ``path`` (defaults when absent unless ``required``), then the environment, then
    ``overrides`` ({"model.id": ("--model", value)}); ConfigError lists every problem."""
    layers = Layers()
    if path is not None:
        path = Path(path)
        if path.is_file():
            layers.add_tree(read_file(path), f"config file {path}")
        elif required:
            raise ConfigError(
                f"config file {path} does not exist; copy config.example.toml to {path} "
                "or drop --config to use the defaults"
            )
    add_environment(layers, Settings, os.environ if environ is None else environ)
    for key, (option, value) in (overrides or {}).items():
        if value is not None:
            layers.set(tuple(key.split(".")), value, f"option {option}")
    try:
        settings = Settings.model_validate(layers.data)
    except ValidationError as error:
        lines = list(describe(error, layers))
    else:
        lines = _combination_errors(settings, layers)
    if lines:
        raise ConfigError("invalid configuration:\n" + "\n".join(f"  {line}" for line in lines))
    return settings
