"""What a fresh install needs: dependencies declared once, the real model's file layout loads."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from hermes_bot.config import ModelSettings
from hermes_bot.errors import ModelLoadError
from hermes_bot.inference.loading import load
from scripts.sync_requirements import rendered

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_requirement_files_are_generated_from_pyproject() -> None:
    for name, text in rendered().items():
        assert (ROOT / name).read_text() == text, (
            f"{name} is out of date: run python scripts/sync_requirements.py"
        )


@pytest.mark.parametrize(
    "line",
    PROJECT["dependencies"]
    + [d for extra in PROJECT["optional-dependencies"].values() for d in extra],
)
def test_every_dependency_has_a_lower_and_an_upper_bound(line: str) -> None:
    operators = {spec.operator for spec in Requirement(line).specifier}
    assert ">=" in operators and "<" in operators, line


def test_the_command_and_the_build_are_declared() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["build-system"]["build-backend"]
    assert PROJECT["scripts"]["hermes-bot"] == "hermes_bot.cli:main"
    assert "quant" in PROJECT["optional-dependencies"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_the_hub_layout_loads_through_the_real_path(hub_layout_model_dir: Path) -> None:
    assert not (hub_layout_model_dir / "tokenizer.json").exists()
    assert (hub_layout_model_dir / "pytorch_model-00002-of-00002.bin").exists()
    loaded = load(ModelSettings(id=str(hub_layout_model_dir), device="cpu", dtype="float32"))
    assert loaded.eos_id == 32000
    assert loaded.tokenizer.convert_tokens_to_ids("<|im_start|>") == 32001
    ids = loaded.tokenizer("<|im_start|>user\nhi<|im_end|>", add_special_tokens=False)["input_ids"]
    assert ids[0] == 32001 and ids[-1] == 32000
    assert loaded.model.config.vocab_size == 32002


def test_a_missing_tokenizer_package_is_named(
    hub_layout_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sentencepiece", None)
    with pytest.raises(ModelLoadError) as caught:
        load(ModelSettings(id=str(hub_layout_model_dir), device="cpu", dtype="float32"))
    message = str(caught.value)
    assert "pip install sentencepiece" in message
    assert "tiktoken" not in message
