"""benchmarks/gpu.py is ready for a GPU machine: it imports, describes Mistral-7B, and says
clearly when there is no GPU."""

from __future__ import annotations

import asyncio

import pytest
import torch

from benchmarks import gpu


def test_the_model_has_mistral_7b_shape() -> None:
    config = gpu.mistral_7b_config()
    shape = (config.hidden_size, config.num_hidden_layers, config.num_key_value_heads)
    assert shape == (4096, 32, 8)
    assert (config.vocab_size, config.intermediate_size) == (32002, 14336)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_without_a_gpu_it_says_so() -> None:
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        asyncio.run(gpu.main(gpu.parse(["--new-tokens", "8"])))
