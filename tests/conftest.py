"""Shared fixtures: the tiny offline model (built once per run) and a scripted backend."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight OpenHermes stand-in, loadable with from_pretrained."""
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-openhermes"))


@pytest.fixture(scope="session")
def hub_layout_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model in the real hub repository's layout (no tokenizer.json, sharded .bin)."""
    from tests.tiny_model import build_hub_layout_model

    return build_hub_layout_model(tmp_path_factory.mktemp("hub-openhermes"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def grammar_compiler(tiny_tokenizer):
    """One llguidance grammar compiler for the tiny tokenizer (it caches compiled grammars)."""
    from hermes_bot.inference.grammar import GrammarCompiler

    return GrammarCompiler(tiny_tokenizer)
