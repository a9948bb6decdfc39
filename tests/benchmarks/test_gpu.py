"""benchmarks/gpu.py is ready for a GPU machine: it imports, describes Mistral-7B, and says
clearly when there is no GPU."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from benchmarks import gpu
from hermes_bot.inference import worker
from tests.tiny_model import SIZES, build_tokenizer_files


def test_the_model_has_mistral_7b_shape() -> None:
    config = gpu.mistral_7b_config()
    shape = (config.hidden_size, config.num_hidden_layers, config.num_key_value_heads)
    assert shape == (4096, 32, 8)
    assert (config.vocab_size, config.intermediate_size) == (32002, 14336)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_without_a_gpu_it_says_so() -> None:
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        asyncio.run(gpu.main(gpu.parse(["--new-tokens", "8"])))


async def test_the_measurement_runs_end_to_end_on_a_small_model_of_the_same_family(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a GPU session runs, on the CPU with the tiny shape: nothing left to find out there.
    monkeypatch.setattr(worker, "load", worker.load)  # serve_in_memory replaces it
    hidden, layers, heads, kv_heads, intermediate = SIZES["tiny"]
    config = gpu.mistral_7b_config()
    config.hidden_size, config.num_hidden_layers = hidden, layers
    config.num_attention_heads, config.num_key_value_heads = heads, kv_heads
    config.intermediate_size, config.head_dim = intermediate, hidden // heads
    build_tokenizer_files(tmp_path)
    config.save_pretrained(tmp_path)
    model = gpu.random_model(config, device="cpu", dtype=torch.float32)
    figures = await gpu.measure(model, tmp_path, new_tokens=4, compile=False, context_window=256)
    assert figures["single_tokens_per_s"] > 0 and figures["concurrent_tokens_per_s"] > 0
    assert figures["ttft_ms"] > 0
