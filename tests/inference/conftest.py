"""Fixtures for the in-process backend: started tiny-model backends and greedy references."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from hermes_bot.backend import GenerationParams
from hermes_bot.config import ExecutorSettings, ModelSettings
from hermes_bot.inference.transformers_backend import TransformersBackend

torch.set_num_threads(1)

GREEDY = GenerationParams(max_new_tokens=12, do_sample=False)


def chat(text: str) -> str:
    """A rendered one-turn ChatML prompt."""
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="session")
def sharp_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with 10x query/key weights: its attention is sharp enough that wrong
    positions or padding change the greedy output (random init attends almost uniformly)."""
    import shutil

    from transformers import AutoModelForCausalLM

    directory = tmp_path_factory.mktemp("sharp-openhermes")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    for layer in model.model.layers:
        layer.self_attn.q_proj.weight.data *= 10
        layer.self_attn.k_proj.weight.data *= 10
    model.save_pretrained(directory)
    for path in tiny_model_dir.iterdir():
        if not path.name.startswith(("model", "config")):
            shutil.copy(path, directory / path.name)
    return directory


@pytest.fixture
def models(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The torch models the workers load during a test, in loading order."""
    from hermes_bot.inference import worker

    loaded: list[Any] = []

    def load(settings: ModelSettings) -> Any:
        result = real_load(settings)
        loaded.append(result.model)
        return result

    real_load = worker.load
    monkeypatch.setattr(worker, "load", load)
    return loaded


@pytest.fixture
async def make_backend(
    sharp_model_dir: Path, models: list[Any]
) -> AsyncIterator[Callable[..., Any]]:
    """Builds and starts backends on the tiny model; closes them after the test."""
    backends: list[TransformersBackend] = []

    async def make(
        *,
        defaults: GenerationParams = GREEDY,
        context_window: int = 1024,
        grammar_factory: Callable[[Any], Any] | None = None,
        **executor: Any,
    ) -> TransformersBackend:
        backend = TransformersBackend(
            ModelSettings(id=str(sharp_model_dir), context_window=context_window),
            ExecutorSettings(**executor),
            defaults,
            grammar_factory=grammar_factory,
        )
        backends.append(backend)
        await backend.start()
        return backend

    yield make
    for backend in backends:
        runner = backend._worker._runner if backend._worker is not None else None
        await backend.close()
        if runner is not None:
            # Whatever the test did, every block is back except those the prefix cache keeps.
            cache, cached = runner.cache, len(runner._prefixes)
            assert cache.blocks_held() == 0 and cache.free + cached == cache.blocks - 1


@pytest.fixture(scope="session")
def reference_model(sharp_model_dir: Path) -> Any:
    """A second copy of the backends' model for plain model.generate references."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(sharp_model_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="session")
def reference(reference_model: Any, tiny_tokenizer: Any) -> Callable[[str, int], str]:
    """Greedy completion text of one prompt via model.generate (no batching)."""

    def complete(prompt: str, max_new_tokens: int) -> str:
        ids = tiny_tokenizer(prompt, return_tensors="pt").input_ids
        out = reference_model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=[32000, 32001],
            pad_token_id=32000,
        )
        return tiny_tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)

    return complete
