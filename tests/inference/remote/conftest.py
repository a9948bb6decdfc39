"""Real inference servers on loopback: llama.cpp's server (xllamacpp) and ``transformers serve``.

Each session-scoped server starts once per test run; the failover tests
start their own llama.cpp servers (about half a second each) so they can
kill them.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hermes_bot.config import GenerationSettings, ModelSettings, RemoteSettings, Settings
from hermes_bot.inference.remote import RemoteBackend
from tests.adapters.discord.conftest import fake, start_bot  # noqa: F401  (fixtures)
from tests.inference.remote.gguf_export import export_gguf
from tests.inference.remote.servers import (
    RunningServer,
    spawn_transformers_serve,
    start_llama_server,
    wait_healthy,
)

# transformers serve takes seconds to import and load: it is started as soon as the tests
# that need it are collected, and runs while the rest of the suite does.
_EARLY: dict[str, RunningServer] = {}


def pytest_collection_finish(session: pytest.Session) -> None:
    # After deselection (-k, -m): only a run that will use the server starts it.
    if any("transformers_server" in getattr(item, "fixturenames", ()) for item in session.items):
        from tests.tiny_model import build_tiny_model

        directory = Path(tempfile.mkdtemp(prefix="hermes-serve-"))
        build_tiny_model(directory / "model")
        _EARLY["transformers"] = spawn_transformers_serve(directory / "model", directory)


def pytest_sessionfinish() -> None:
    server = _EARLY.pop("transformers", None)
    if server is not None:
        server.stop()
        shutil.rmtree(server.log.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_gguf(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny test model as GGUF, ChatML tokens kept special."""
    return export_gguf(tiny_model_dir, tmp_path_factory.mktemp("gguf") / "tiny-openhermes.gguf")


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def llama_server(tiny_gguf: Path, server_logs: Path) -> Iterator[RunningServer]:
    """One llama.cpp server shared by the session (two slots of 2048 tokens)."""
    server = start_llama_server(tiny_gguf, server_logs)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def transformers_server() -> RunningServer:
    """``transformers serve`` shared by the session (started at collection; few tests use it)."""
    server = _EARLY["transformers"]
    wait_healthy(server.url.removesuffix("/v1"), server.process, server.log, 180)
    server.started_in = time.monotonic() - server.started_in
    return server


@pytest.fixture
def llama_servers(tiny_gguf: Path, server_logs: Path) -> Iterator[Callable[..., RunningServer]]:
    """Starts llama.cpp servers this test may kill; stops what is left after it."""
    started: list[RunningServer] = []

    def start(**options: Any) -> RunningServer:
        server = start_llama_server(tiny_gguf, server_logs, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def remote_settings(model_dir: Path, urls: list[str], **remote: Any) -> Settings:
    """Settings for the remote backend serving the tiny model from ``urls``."""
    generation = remote.pop("generation", {})
    chat = remote.pop("chat", {})
    return Settings(
        model=ModelSettings(id=str(model_dir), context_window=2048),
        generation=GenerationSettings(**{"max_new_tokens": 24, **generation}),
        chat=chat,
        remote=RemoteSettings(urls=urls, **remote),
    )


@pytest.fixture
async def make_remote(tiny_model_dir: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await make_remote(urls, **remote_settings)`` → (started RemoteBackend, Settings)."""
    backends: list[RemoteBackend] = []

    async def make(urls: list[str], **remote: Any) -> tuple[RemoteBackend, Settings]:
        settings = remote_settings(tiny_model_dir, urls, **remote)
        backend = RemoteBackend.from_settings(settings)
        backends.append(backend)
        await backend.start()
        return backend, settings

    yield make
    for backend in backends:
        await backend.close()


def post_json(url: str, body: dict[str, Any]) -> Any:
    """POST ``body`` and decode the JSON answer (straight to a server, no bot)."""
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)
