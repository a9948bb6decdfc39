"""Writes the tiny test model as GGUF for llama.cpp's server (written for these tests).

GGUF stores Mistral under the ``llama`` architecture. Facts the file must get
right: llama.cpp expects the query and key projections with each head's two
rotary halves interleaved (Hugging Face keeps them as two blocks), and the
ChatML tokens are CONTROL tokens, so a prompt's ``<|im_start|>`` is one token
and a generated ``<|im_end|>`` ends the answer instead of being printed.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import sentencepiece
from safetensors.numpy import load_file

_LAYER_TENSORS = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def _interleave_rotary_halves(weight: np.ndarray, heads: int) -> np.ndarray:
    rows = weight.shape[0]
    return (
        weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def _tensor_name(hf_name: str) -> str:
    fixed = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    if hf_name in fixed:
        return fixed[hf_name]
    _, _, layer, rest = hf_name.split(".", 3)
    module, _, kind = rest.rpartition(".")
    return f"blk.{layer}.{_LAYER_TENSORS[module]}.{kind}"


def _added_tokens(model_dir: Path) -> dict[int, str]:
    """The special tokens added on top of the SentencePiece vocabulary, by id."""
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    if "added_tokens_decoder" in config:
        return {int(key): entry["content"] for key, entry in config["added_tokens_decoder"].items()}
    fast = json.loads((model_dir / "tokenizer.json").read_text())
    return {entry["id"]: entry["content"] for entry in fast["added_tokens"] if entry["special"]}


def _vocabulary(model_dir: Path) -> tuple[list[bytes], list[float], list[int]]:
    processor = sentencepiece.SentencePieceProcessor(model_file=str(model_dir / "tokenizer.model"))
    tokens, scores, types = [], [], []
    for token_id in range(processor.vocab_size()):
        tokens.append(processor.id_to_piece(token_id).encode())
        scores.append(processor.get_score(token_id))
        if processor.is_unknown(token_id):
            types.append(gguf.TokenType.UNKNOWN)
        elif processor.is_control(token_id):
            types.append(gguf.TokenType.CONTROL)
        elif processor.is_byte(token_id):
            types.append(gguf.TokenType.BYTE)
        elif processor.is_unused(token_id):
            types.append(gguf.TokenType.UNUSED)
        else:
            types.append(gguf.TokenType.NORMAL)
    for token_id, content in sorted(_added_tokens(model_dir).items()):
        if token_id >= len(tokens):
            assert token_id == len(tokens), "added tokens must follow the base vocabulary"
            tokens.append(content.encode())
            scores.append(-1000.0)
            types.append(gguf.TokenType.CONTROL)
    return tokens, scores, types


def export_gguf(model_dir: Path, path: Path) -> Path:
    """Write ``model_dir`` (a saved MistralForCausalLM plus tokenizer) to ``path`` as f32 GGUF."""
    config = json.loads((model_dir / "config.json").read_text())
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    rope = config.get("rope_parameters") or {"rope_theta": config.get("rope_theta", 10000.0)}
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("hermes-bot tiny test model")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope["rope_theta"]))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    tokens, scores, types = _vocabulary(model_dir)
    assert len(tokens) == config["vocab_size"]
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(config["bos_token_id"])
    writer.add_eos_token_id(config["eos_token_id"])
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    tokenizer_config = json.loads((model_dir / "tokenizer_config.json").read_text())
    template = tokenizer_config.get("chat_template")
    if template is None and (model_dir / "chat_template.jinja").is_file():
        template = (model_dir / "chat_template.jinja").read_text()
    if template:
        writer.add_chat_template(template)
    for name, weight in sorted(load_file(str(model_dir / "model.safetensors")).items()):
        if name.endswith("q_proj.weight"):
            weight = _interleave_rotary_halves(weight, heads)
        elif name.endswith("k_proj.weight"):
            weight = _interleave_rotary_halves(weight, kv_heads)
        writer.add_tensor(_tensor_name(name), np.ascontiguousarray(weight, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
