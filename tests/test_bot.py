"""The entry point: configuration and model errors end with a clear message and exit code."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bot

ROOT = Path(__file__).resolve().parents[1]


def run_bot(
    *args: str, home: Path, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    """``python bot.py --console ARGS`` offline, with no HERMES_BOT_/DISCORD settings inherited
    and the user's config and log directories under ``home``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HERMES_BOT_", "DISCORD"))}
    return subprocess.run(
        [sys.executable, "bot.py", "--console", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **clean,
            "HF_HUB_OFFLINE": "1",
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_STATE_HOME": str(home / "state"),
            **env,
        },
    )


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs of bot.main see no config file and no token."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in list(os.environ):
        if name.startswith(("HERMES_BOT_", "DISCORD")):
            monkeypatch.delenv(name)


def test_help_explains_tokens_environment_and_the_console(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        bot.main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for needed in ("DISCORD_TOKEN", "HERMES_BOT_<SECTION>__<KEY>", "--console", "config.toml"):
        assert needed in text
    assert "terminal" in text and "HF_HOME" in text


def test_no_token_and_no_terminal_is_an_error_before_loading_anything(
    no_config: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert bot.main([]) == 2
    err = capsys.readouterr().err
    assert "no Discord token" in err and "--console" in err
    assert "loading" not in err


def test_missing_config_file_passed_explicitly(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert bot.main(["--config", str(tmp_path / "absent.toml"), "--console"]) == 2
    assert "absent.toml does not exist" in capsys.readouterr().err


def test_misspelt_config_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[generation]\ntemprature = 0.5\n")
    assert bot.main(["--config", str(path), "--console"]) == 2
    assert "generation.temprature: unknown key" in capsys.readouterr().err


def test_no_token_from_a_terminal_opens_the_console(
    no_config: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    terminal = io.StringIO("/quit\n")
    terminal.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stdin", terminal)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        # The console starts by loading the model; a missing one ends it there, with exit code 1.
        assert bot.main(["--model", str(tmp_path / "no-such-model")]) == 1
    finally:
        logging.captureWarnings(False)
        root.handlers[:], root.level = saved
    err = capsys.readouterr().err
    assert "hermes-bot: loading" in err and "no terminal" not in err


def test_bad_device_option(no_config: None, capsys: pytest.CaptureFixture) -> None:
    assert bot.main(["--device", "gpu", "--console"]) == 2
    [headline, line] = capsys.readouterr().err.strip().splitlines()
    assert headline == "hermes-bot: invalid configuration:"
    assert "model.device" in line and "'gpu'" in line and "option --device" in line
    assert "http" not in line


def test_unloadable_model_exits_non_zero_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    result = run_bot("--model", str(missing), home=tmp_path)
    assert result.returncode == 1
    assert str(missing) in result.stderr
    assert "local directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_cuda_without_a_gpu_is_a_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = run_bot(
        "--model", str(tiny_model_dir), "--device", "cuda", home=tmp_path, CUDA_VISIBLE_DEVICES=""
    )
    assert result.returncode == 1
    assert "cuda" in result.stderr.lower() and "GPU" in result.stderr
    assert "Traceback" not in result.stderr


def test_console_answers_with_the_tiny_model(hub_layout_model_dir: Path, tmp_path: Path) -> None:
    """The hub-layout model through bot.py: the terminal shows the conversation and nothing else;
    a turn that fails shows "[!]" and fails this test."""
    result = run_bot(
        "--model",
        str(hub_layout_model_dir),
        home=tmp_path,
        stdin="hello there\n/quit\n",
        HERMES_BOT_GENERATION__MAX_NEW_TOKENS="8",
        HERMES_BOT_GENERATION__DO_SAMPLE="false",
        HERMES_BOT_CHAT__CORRECTIVE_RETRIES="0",
    )
    assert result.returncode == 0, result.stderr
    conversation = re.fullmatch(
        r"hermes-bot console\. [^\n]*\nyou> hello there\nhermes> (?P<answer>.*)\nyou> /quit\nbye\n",
        result.stdout,
        re.DOTALL,
    )
    assert conversation, result.stdout
    answer = conversation["answer"]
    assert answer.strip() and not answer.startswith("[!]"), answer
    assert "hermes> " not in answer and "you> " not in answer
    log = tmp_path / "state" / "hermes-bot" / "console.log"
    assert result.stderr.splitlines() == [
        f"hermes-bot: logging to {log}",
        f"hermes-bot: loading {hub_layout_model_dir} ...",
    ]
    logged = log.read_text()
    assert "no config file (looked for" in logged
    assert f"loaded {hub_layout_model_dir}" in logged
