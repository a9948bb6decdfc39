"""Where settings come from: the config file, the environment, the command line.

Each value remembers its source (a file, a variable, an option) so that an
error names the place the user has to fix. Nothing is read at import time.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
import tomllib
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from hermes_bot.errors import ConfigError, problem_message

ENV_PREFIX = "HERMES_BOT_"
CONFIG_NAME = "config.toml"
# Plain variables that set one key each (platform tokens, by convention outside the prefix).
TOKEN_VARIABLES: dict[str, tuple[str, ...]] = {
    "DISCORD_TOKEN": ("discord", "token"),
    "SLACK_BOT_TOKEN": ("slack", "bot_token"),
    "SLACK_APP_TOKEN": ("slack", "app_token"),
}
DEFAULT = "default"

Key = tuple[str, ...]


def user_config_dir() -> Path:
    """The per-user config directory: ~/.config/hermes-bot on Linux (XDG_CONFIG_HOME)."""
    home = Path.home()
    return _app_dir(
        windows=os.environ.get("APPDATA") or home / "AppData" / "Roaming",
        macos=home / "Library" / "Application Support",
        linux=_xdg("XDG_CONFIG_HOME", home / ".config"),
    )


def user_log_dir() -> Path:
    """Where the console writes its log: ~/.local/state/hermes-bot on Linux (XDG_STATE_HOME)."""
    home = Path.home()
    return _app_dir(
        windows=os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local",
        macos=home / "Library" / "Logs",
        linux=_xdg("XDG_STATE_HOME", home / ".local" / "state"),
    )


def _app_dir(*, windows: str | Path, macos: Path, linux: Path) -> Path:
    """hermes-bot's directory under the current platform's base directory."""
    base = {"win32": windows, "darwin": macos}.get(sys.platform, linux)
    return Path(base) / "hermes-bot"


def _xdg(variable: str, default: Path) -> Path:
    """An XDG base directory: the variable if it holds an absolute path, else the default."""
    value = os.environ.get(variable, "")
    return Path(value) if os.path.isabs(value) else default


@dataclass(frozen=True)
class ConfigFile:
    """The config file to read (``path`` None: none found, defaults) and how it was chosen."""

    path: Path | None
    how: str
    searched: tuple[Path, ...] = ()

    def describe(self) -> str:
        """Which file is read and why, or where none was found."""
        if self.path is not None:
            return f"config file {self.path} ({self.how})"
        looked = ", ".join(str(path) for path in self.searched)
        return f"no config file (looked for {looked}); using defaults and the environment"


def find_config_file(explicit: str | Path | None = None) -> ConfigFile:
    """``explicit`` if given, else ./config.toml, else config.toml in the user config dir."""
    if explicit is not None:
        return ConfigFile(Path(explicit), "given with --config")
    candidates = [
        (Path.cwd() / CONFIG_NAME, "current directory"),
        (user_config_dir() / CONFIG_NAME, "user config directory"),
    ]
    for path, where in candidates:
        if path.is_file():
            return ConfigFile(path, f"found in the {where}")
    return ConfigFile(None, "none found", tuple(path for path, _ in candidates))


@dataclass
class Layers:
    """Raw settings merged from every source, with the source of each value."""

    data: dict[str, Any] = field(default_factory=dict)
    origins: dict[Key, str] = field(default_factory=dict)

    def set(self, key: Key, value: Any, origin: str) -> None:
        """Set ``key`` to ``value``, replacing what lay under it, and remember ``origin``."""
        node = self.data
        for part in key[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[key[-1]] = value
        self.origins = {k: v for k, v in self.origins.items() if k[: len(key)] != key}
        self.origins[key] = origin

    def add_tree(self, tree: Mapping[str, Any], origin: str, prefix: Key = ()) -> None:
        """Set every leaf of ``tree`` (a parsed TOML file), each from ``origin``."""
        for name, value in tree.items():
            if isinstance(value, Mapping) and value:
                self.add_tree(value, origin, (*prefix, name))
            else:
                self.set((*prefix, name), value, origin)

    def origin(self, key: Iterable[str | int]) -> str:
        """The source of the value at ``key`` (or of its nearest enclosing value)."""
        parts = tuple(str(part) for part in key)
        for end in range(len(parts), 0, -1):
            if parts[:end] in self.origins:
                return self.origins[parts[:end]]
        return DEFAULT


def read_file(path: Path) -> dict[str, Any]:
    """The TOML file at ``path``; ConfigError when it cannot be read or parsed."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from None


def _field_type(annotation: Any) -> Any:
    """``X`` for ``X | None`` and ``Annotated[X, ...]``."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(options) == 1:
            return _field_type(options[0])
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_complex(annotation: Any) -> bool:
    """Values of this type are written as JSON in an environment variable."""
    plain = typing.get_origin(annotation) or annotation
    return _is_model(plain) or plain in (list, dict, set, tuple, frozenset)


def _variables(model: type[BaseModel], key: Key = ()) -> Iterator[str]:
    """Every HERMES_BOT_ variable name that sets a value of ``model``."""
    for name, info in model.model_fields.items():
        annotation = _field_type(info.annotation)
        if _is_model(annotation):
            yield from _variables(annotation, (*key, name))
        else:
            yield ENV_PREFIX + "__".join((*key, name)).upper()


def _env_key(model: type[BaseModel], variable: str) -> tuple[Key, Any]:
    """The settings key ``HERMES_BOT_A__B`` sets, and the annotation of that key."""
    key: list[str] = []
    annotation: Any = model
    for part in variable[len(ENV_PREFIX) :].lower().split("__"):
        fields = annotation.model_fields if _is_model(annotation) else {}
        if part not in fields:
            near = difflib.get_close_matches(variable.upper(), list(_variables(model)), n=1)
            hint = f"did you mean {near[0]}?" if near else "see config.example.toml for the keys"
            raise ConfigError(f"{variable}: no such setting; {hint}")
        key.append(part)
        annotation = _field_type(fields[part].annotation)
    return tuple(key), annotation


def add_environment(layers: Layers, model: type[BaseModel], environ: Mapping[str, str]) -> None:
    """Apply DISCORD_TOKEN-style variables, then every HERMES_BOT_<SECTION>__<KEY>."""
    for variable, key in TOKEN_VARIABLES.items():
        if environ.get(variable, "").strip():
            layers.set(key, environ[variable].strip(), f"environment variable {variable}")
    problems = []
    for variable, raw in sorted(environ.items()):
        if not variable.upper().startswith(ENV_PREFIX):
            continue
        try:
            key, annotation = _env_key(model, variable)
        except ConfigError as error:
            problems.append(str(error))
            continue
        value: Any = raw
        if _is_complex(annotation):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                problems.append(f"{variable}: not valid JSON (write it like [1, 2] or {{...}})")
                continue
        layers.set(key, value, f"environment variable {variable}")
    if problems:
        raise ConfigError("invalid environment:\n" + "\n".join(f"  {p}" for p in problems))


# A value under a key naming one of these, or holding a URL's credentials, is never echoed.
_SECRET_WORDS = ("token", "secret", "key")
_URL_CREDENTIALS = re.compile(r"://[^/\s]*@")


def _shown(key: Key, value: Any) -> str:
    if any(word in part for part in key for word in _SECRET_WORDS) or isinstance(value, SecretStr):
        return ""
    text = repr(value)
    return f", got {text}" if len(text) <= 80 and not _URL_CREDENTIALS.search(text) else ""


def describe(error: ValidationError, layers: Layers) -> Iterator[str]:
    """One line per invalid value: the key, what is wrong, and where the value came from."""
    for item in error.errors():
        key = tuple(str(part) for part in item["loc"])
        where = ".".join(key)
        shown = "" if item["type"] == "extra_forbidden" else _shown(key, item.get("input"))
        yield f"{where}: {problem_message(item)}{shown} ({layers.origin(key)})"
