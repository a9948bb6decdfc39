"""The entry point: configuration and model errors end with a clear message and exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import bot

ROOT = Path(__file__).resolve().parents[1]


def run_bot(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """``python bot.py --console ARGS`` offline, with no HERMES_BOT_/DISCORD settings inherited."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HERMES_BOT_", "DISCORD"))}
    return subprocess.run(
        [sys.executable, "bot.py", "--console", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env={**clean, "HF_HUB_OFFLINE": "1", **env},
    )


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


def test_bad_device_option(capsys: pytest.CaptureFixture) -> None:
    assert bot.main(["--device", "tpu", "--console"]) == 2
    assert "device" in capsys.readouterr().err


def test_unloadable_model_exits_non_zero_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    result = run_bot("--model", str(missing))
    assert result.returncode == 1
    assert str(missing) in result.stderr
    assert "local directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_cuda_without_a_gpu_is_a_clear_error(tiny_model_dir: Path) -> None:
    result = run_bot("--model", str(tiny_model_dir), "--device", "cuda", CUDA_VISIBLE_DEVICES="")
    assert result.returncode == 1
    assert "cuda" in result.stderr.lower() and "GPU" in result.stderr
    assert "Traceback" not in result.stderr


def test_console_answers_with_the_tiny_model(tiny_model_dir: Path) -> None:
    result = run_bot(
        "--model",
        str(tiny_model_dir),
        stdin="hello there\n/quit\n",
        HERMES_BOT_GENERATION__MAX_NEW_TOKENS="8",
        HERMES_BOT_CHAT__CORRECTIVE_RETRIES="0",
    )
    assert result.returncode == 0, result.stderr
    assert "hermes> " in result.stdout
    assert result.stdout.rstrip().endswith("bye")
