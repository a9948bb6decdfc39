"""Builds the offline stand-in for OpenHermes-2.5: its tokenizer, a tiny random Mistral.

The tokenizer is Mistral-7B's SentencePiece model (shipped by mistral_common)
plus OpenHermes' two ChatML tokens, ``<|im_end|>`` (32000, the EOS) and
``<|im_start|>`` (32001), saved as files and loaded back through the same
``from_pretrained`` path the real model uses.

Two layouts: :func:`build_tiny_model` saves what transformers writes today
(``tokenizer.json``, safetensors); :func:`build_hub_layout_model` writes the
files exactly as the real teknium/OpenHermes-2.5-Mistral-7B repository has
them (SentencePiece ``tokenizer.model`` and no ``tokenizer.json``, old-style
tokenizer config, ``added_tokens.json``, sharded ``pytorch_model-*.bin``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SIZES = {
    # name: (hidden, layers, heads, kv_heads, intermediate)
    "tiny": (64, 2, 4, 2, 128),
    "60m": (512, 4, 8, 4, 1536),
}


def _sentencepiece_file() -> Path:
    import mistral_common

    return Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"


def build_tokenizer_files(directory: Path) -> None:
    """Write OpenHermes-2.5's tokenizer files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_sentencepiece_file(), directory / "tokenizer.model")
    chatml = {
        "32000": {"content": "<|im_end|>"},
        "32001": {"content": "<|im_start|>"},
    }
    added_tokens_decoder = {
        "0": {"content": "<unk>"},
        "1": {"content": "<s>"},
        "2": {"content": "</s>"},
        **chatml,
    }
    for entry in added_tokens_decoder.values():
        entry.update(lstrip=False, normalized=False, rstrip=False, single_word=False, special=True)
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "<|im_end|>",
        "unk_token": "<unk>",
        "pad_token": None,
        "legacy": True,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 4096,
        "added_tokens_decoder": added_tokens_decoder,
        "additional_special_tokens": ["<|im_end|>", "<|im_start|>"],
        "chat_template": CHATML_TEMPLATE,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (directory / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": "<s>", "eos_token": "<|im_end|>", "unk_token": "<unk>"})
    )


def _random_model(size: str, seed: int):
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    hidden, layers, heads, kv_heads, intermediate = SIZES[size]
    config = MistralConfig(
        vocab_size=32002,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=4096,
        sliding_window=None,
        bos_token_id=1,
        eos_token_id=32000,
        pad_token_id=None,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = MistralForCausalLM(config)
    model.generation_config.eos_token_id = 32000
    return model


def build_tiny_model(directory: Path, size: str = "tiny", seed: int = 0) -> Path:
    """Save a random-weight MistralForCausalLM (vocab 32002) plus tokenizer in ``directory``."""
    from transformers import AutoTokenizer

    directory = Path(directory)
    build_tokenizer_files(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") == 32000
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") == 32001
    model = _random_model(size, seed)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_hub_layout_model(directory: Path, seed: int = 0) -> Path:
    """The tiny model in the real OpenHermes-2.5 repository's file layout, written by hand."""
    import torch

    directory = Path(directory)
    build_tokenizer_files(directory)
    config = json.loads((directory / "tokenizer_config.json").read_text())
    # The hub's file predates transformers' added_tokens_decoder-only format.
    config.update(
        additional_special_tokens=[],
        model_max_length=1000000000000000019884624838656,
        sp_model_kwargs={},
        spaces_between_special_tokens=False,
        trust_remote_code=False,
        use_default_system_prompt=True,
        use_fast=True,
    )
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (directory / "added_tokens.json").write_text(
        json.dumps({"<|im_end|>": 32000, "<|im_start|>": 32001}, indent=2)
    )
    model = _random_model("tiny", seed)
    model_config = model.config.to_dict()
    model_config.update(architectures=["MistralForCausalLM"], torch_dtype="bfloat16")
    model_config.pop("dtype", None)
    model_config["transformers_version"] = "4.34.0.dev0"
    (directory / "config.json").write_text(json.dumps(model_config, indent=2))
    (directory / "generation_config.json").write_text(
        json.dumps({"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 32000})
    )
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    names = sorted(state)
    shards = {
        "pytorch_model-00001-of-00002.bin": names[: len(names) // 2],
        "pytorch_model-00002-of-00002.bin": names[len(names) // 2 :],
    }
    weight_map = {}
    for file, shard_names in shards.items():
        torch.save({name: state[name] for name in shard_names}, directory / file)
        weight_map.update(dict.fromkeys(shard_names, file))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2))
    return directory


if __name__ == "__main__":
    import sys

    if sys.argv[2:3] == ["hub"]:
        print(build_hub_layout_model(Path(sys.argv[1])))
    else:
        print(build_tiny_model(Path(sys.argv[1]), *(sys.argv[2:3] or ["tiny"])))
