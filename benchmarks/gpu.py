"""GPU benchmark: the executor on a random-weight model with Mistral-7B's shape, fp16, CUDA.

    python benchmarks/gpu.py [--new-tokens 256] [--compile] [--vllm]

Nothing is downloaded: the weights are random (decoding speed does not depend
on their values), the tokenizer is OpenHermes' rebuilt offline. Reports
single-stream and 16-concurrent tokens/s and time to first token through
TransformersBackend (stops disabled, so every request decodes exactly
``--new-tokens`` tokens), and the same workload through vLLM when it is
importable (``load_format="dummy"``: random weights of the same shape).
Ends with ``name=value`` lines.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from hermes_bot.backend import GenerationParams, GenerationRequest
from hermes_bot.config import ExecutorSettings, ModelSettings
from hermes_bot.inference import worker
from hermes_bot.inference.loading import LoadedModel
from hermes_bot.inference.transformers_backend import TransformersBackend
from tests.tiny_model import build_tokenizer_files

CONCURRENT = 16


def mistral_7b_config() -> Any:
    """Mistral-7B-v0.1's architecture (what OpenHermes-2.5 fine-tunes), OpenHermes' vocabulary."""
    from transformers import MistralConfig

    return MistralConfig(
        vocab_size=32002,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=32768,
        rope_theta=10000.0,
        sliding_window=None,
        bos_token_id=1,
        eos_token_id=32000,
        tie_word_embeddings=False,
    )


def random_model(config: Any, device: str = "cuda", dtype: torch.dtype = torch.float16) -> Any:
    """The model with random weights, built on ``device`` without a CPU copy."""
    from transformers import MistralForCausalLM

    with torch.device("meta"):
        model = MistralForCausalLM(config)
    model = model.to_empty(device=device).to(dtype)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.02)
    # Rotary frequencies must be real ones, not noise: built again from the config.
    model.model.rotary_emb = type(model.model.rotary_emb)(config).to(device)
    return model.eval()


def serve_in_memory(model: Any, tokenizer: Any) -> None:
    """Make the worker use ``model`` instead of loading one (no stop tokens)."""

    def load(settings: Any) -> LoadedModel:
        return LoadedModel(model, tokenizer, model.device, 32000, 32000, frozenset())

    worker.load = load


async def run_executor(backend: TransformersBackend, prompts: list[str], new: int) -> dict:
    params = GenerationParams(max_new_tokens=new, do_sample=False)
    start = time.perf_counter()
    firsts: list[float] = []

    async def one(prompt: str) -> None:
        first = None
        async for _ in backend.stream(GenerationRequest(prompt, params)):
            first = first or time.perf_counter() - start
        firsts.append(first or 0.0)

    await asyncio.gather(*(one(p) for p in prompts))
    seconds = time.perf_counter() - start
    return {
        "tokens_per_s": len(prompts) * new / seconds,
        "ttft_ms": 1e3 * sum(firsts) / len(firsts),
    }


def run_vllm(directory: Path, prompts: list[str], new: int) -> dict[str, dict] | None:
    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        print("vLLM is not importable: skipped")
        return None
    llm = LLM(str(directory), load_format="dummy", dtype="float16", max_model_len=4096)
    params = SamplingParams(max_tokens=new, temperature=0.0, ignore_eos=True)
    results = {}
    for name, batch in (("single", prompts[:1]), ("concurrent", prompts)):
        llm.generate(batch, params)  # warm-up
        start = time.perf_counter()
        llm.generate(batch, params)
        results[name] = {"tokens_per_s": len(batch) * new / (time.perf_counter() - start)}
    return results


PROMPTS = [
    f"<|im_start|>user\nQuestion {i}: tell me about the sea.<|im_end|>\n<|im_start|>assistant\n"
    for i in range(CONCURRENT)
]


async def measure(
    model: Any, directory: Path, *, new_tokens: int, compile: bool, context_window: int = 4096
) -> dict[str, float]:
    """Single-stream and 16-concurrent figures of the executor serving ``model`` (whose
    config and tokenizer files are in ``directory``)."""
    from transformers import AutoTokenizer

    serve_in_memory(model, AutoTokenizer.from_pretrained(directory))
    backend = TransformersBackend(
        ModelSettings(id=str(directory), context_window=context_window),
        ExecutorSettings(max_batch_size=CONCURRENT, compile=compile),
        GenerationParams(do_sample=False),
    )
    await backend.start()
    try:
        await run_executor(backend, PROMPTS[:2], 16)  # warm-up (and compilation)
        single = await run_executor(backend, PROMPTS[:1], new_tokens)
        concurrent = await run_executor(backend, PROMPTS, new_tokens)
    finally:
        await backend.close()
    print(f"executor single: {single}")
    print(f"executor {CONCURRENT} concurrent: {concurrent}")
    return {
        "single_tokens_per_s": single["tokens_per_s"],
        "concurrent_tokens_per_s": concurrent["tokens_per_s"],
        "ttft_ms": concurrent["ttft_ms"],
    }


async def main(args: argparse.Namespace) -> None:
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py needs a CUDA GPU (torch sees none)")
    directory = Path(tempfile.mkdtemp(prefix="mistral-7b-shape-"))
    build_tokenizer_files(directory)
    config = mistral_7b_config()
    config.save_pretrained(directory)
    print(f"GPU: {torch.cuda.get_device_name()}, Mistral-7B shape, fp16, compile={args.compile}")
    figures = await measure(
        random_model(config), directory, new_tokens=args.new_tokens, compile=args.compile
    )
    vllm = run_vllm(directory, PROMPTS, args.new_tokens) if args.vllm else None
    if vllm is not None:
        print(f"vLLM: {vllm}")
        for name in ("single", "concurrent"):
            ours = figures[f"{name}_tokens_per_s"]
            figures[f"vs_vllm_{name}"] = ours / vllm[name]["tokens_per_s"]
    for name, value in figures.items():
        print(f"{name}={value:.4g}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--compile", action="store_true", help="executor.compile = true")
    parser.add_argument("--vllm", action="store_true", help="also run vLLM if importable")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
