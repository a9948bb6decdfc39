"""The first start without the model cached: one line per failed attempt, then a clear last word."""

from __future__ import annotations

import io
import logging
import socket
from pathlib import Path

import pytest
from huggingface_hub import constants

from hermes_bot.config import ModelSettings
from hermes_bot.errors import ModelLoadError
from hermes_bot.inference import download
from hermes_bot.inference.loading import load, route_library_logs

MODEL = "teknium/OpenHermes-2.5-Mistral-7B"


@pytest.fixture
def unreachable_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Online mode, an empty cache, and a hub endpoint on a loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(download, "FIRST_DELAY", 0.0)


def test_an_unreachable_hub_gives_one_line_per_attempt_and_says_what_to_do(
    unreachable_hub: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), pytest.raises(ModelLoadError) as caught:
        load(ModelSettings(id=MODEL, device="cpu"))
    failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert [f.split("(attempt ")[1][:6] for f in failures if "(attempt " in f] == [
        "1 of 3",
        "2 of 3",
        "3 of 3",
    ]
    ours = [
        r for r in caplog.records if r.name == download.__name__ and r.levelno >= logging.WARNING
    ]
    assert len(ours) == 3 and all("\n" not in r.getMessage() for r in ours)
    message = str(caught.value)
    assert f"cannot download {MODEL} (about 14.5 GB) after 3 attempts" in message
    assert f"hf download {MODEL} --local-dir DIR" in message
    assert "--model DIR" in message and "HF_HUB_OFFLINE=1" in message


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_download_shows_one_progress_display_even_with_library_bars_off() -> None:
    route_library_logs()  # what the bot does before loading: transformers' bars off
    screen = _Terminal()
    for desc, name in [
        ("Fetching 3 files", None),
        ("Downloading bytes", "huggingface_hub.snapshot_download.transfer"),
        ("Reconstructing", "huggingface_hub.snapshot_download"),
    ]:
        bar = download.OneBar(desc=desc, total=10, file=screen, disable=None, name=name)
        bar.update(10)
        bar.close()
    shown = screen.getvalue()
    assert "Downloading bytes: 100%" in shown
    assert "Fetching" not in shown and "Reconstructing" not in shown
