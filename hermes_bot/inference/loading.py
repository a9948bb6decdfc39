"""Loading the tokenizer and model with from_pretrained: device, dtype, quantization, errors."""

from __future__ import annotations

import gc
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from hermes_bot.call_format import STOP_TOKENS
from hermes_bot.config import ModelSettings
from hermes_bot.errors import ModelLoadError
from hermes_bot.inference.download import download

_log = logging.getLogger(__name__)

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


@dataclass
class LoadedModel:
    """A loaded model with the token ids the executor needs."""

    model: Any
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    eos_id: int
    pad_id: int
    stop_ids: frozenset[int]


def route_library_logs() -> None:
    """Send transformers' messages through our logging (no own stderr handler, no bars but
    the download's one, see download.py)."""
    from huggingface_hub.utils import enable_progress_bars
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_default_handler()
    transformers_logging.enable_propagation()
    transformers_logging.disable_progress_bar()  # this switches the hub's bars off too
    enable_progress_bars()


def resolve_device(settings: ModelSettings) -> str:
    """The device to run on: "cuda", "mps" or "cpu"; ModelLoadError when the asked one is absent."""
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            "model.device is 'cuda' but no CUDA GPU is available to torch "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
            "install a CUDA build of torch or set model.device = 'cpu'"
        )
    if settings.device == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError("model.device is 'mps' but MPS is not available on this machine")
    if settings.device != "auto":
        return settings.device
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _dtype(settings: ModelSettings, device: str) -> torch.dtype | str:
    if settings.dtype != "auto":
        return _DTYPES[settings.dtype]
    # Half precision on CPU is slow and sometimes unsupported; the checkpoint's dtype elsewhere.
    return torch.float32 if device == "cpu" else "auto"


def _quantization_config(settings: ModelSettings, device: str, dtype: Any) -> Any:
    if settings.quantization == "none":
        return None
    if device != "cuda":
        raise ModelLoadError(
            f"model.quantization = '{settings.quantization}' needs a CUDA GPU "
            f"(device is {device}); set model.quantization = 'none'"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelLoadError(
            f"model.quantization = '{settings.quantization}' needs bitsandbytes: "
            "pip install bitsandbytes (or set model.quantization = 'none')"
        )
    from transformers import BitsAndBytesConfig

    if settings.quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = dtype if isinstance(dtype, torch.dtype) else torch.float16
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_compute_dtype=compute, bnb_4bit_quant_type="nf4"
    )


# What reading a SentencePiece tokenizer.model (and no tokenizer.json) needs: module, package.
_SENTENCEPIECE_NEEDS = {"sentencepiece": "sentencepiece", "google.protobuf": "protobuf"}


def _missing_tokenizer_packages(model_id: str, error: BaseException) -> list[str]:
    """Packages the tokenizer needed but could not import (transformers then blames tiktoken)."""
    directory = Path(model_id).expanduser()
    sentencepiece_only = (directory / "tokenizer.model").is_file() and not (
        directory / "tokenizer.json"
    ).is_file()
    text = str(error).lower()
    if not sentencepiece_only and not any(
        word in text for word in ("tiktoken", "sentencepiece", "protobuf")
    ):
        return []
    missing = []
    for module, package in _SENTENCEPIECE_NEEDS.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    return missing


def _not_loadable(model_id: str, error: BaseException) -> ModelLoadError:
    missing = _missing_tokenizer_packages(model_id, error)
    if missing:
        packages = " ".join(missing)
        return ModelLoadError(
            f"cannot load the tokenizer of {model_id!r}: its SentencePiece tokenizer.model "
            f"needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            f"not installed; run `pip install {packages}` (or `pip install -r requirements.txt`)"
        )
    download = (
        ""
        if _looks_like_path(model_id)
        else f" (for example after `hf download {model_id} "
        "--local-dir DIR`), or check the Hugging Face id"
    )
    return ModelLoadError(
        f"cannot load model {model_id!r}: {type(error).__name__}: {error}. "
        "Point model.id (or --model) at a local directory holding config.json, the tokenizer "
        f"files and the weights{download}."
    )


def _looks_like_path(model_id: str) -> bool:
    return model_id.startswith((".", "/", "~")) or os.sep in model_id.replace("/", "", 1)


def _pretrained(loader: Any, model_id: str, **kwargs: Any) -> Any:
    """from_pretrained that never waits on the network for a local directory or a cached id."""
    path = Path(model_id).expanduser()
    if path.is_dir():
        return loader.from_pretrained(str(path), local_files_only=True, **kwargs)
    if _looks_like_path(model_id):
        raise FileNotFoundError(f"no such directory: {path}")
    try:
        return loader.from_pretrained(model_id, local_files_only=True, **kwargs)
    except OSError:
        if os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}:
            raise
    _log.info("model %s is not in the local cache; downloading it", model_id)
    return loader.from_pretrained(str(download(model_id)), local_files_only=True, **kwargs)


def _token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int | None:
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id:
        return None
    return int(token_id)


def load(settings: ModelSettings) -> LoadedModel:
    """Load tokenizer and model the way the seed did; every failure becomes ModelLoadError."""
    device = resolve_device(settings)
    dtype = _dtype(settings, device)
    quantization = _quantization_config(settings, device, dtype)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if settings.attn_implementation:
        kwargs["attn_implementation"] = settings.attn_implementation
    if quantization is not None:
        kwargs["quantization_config"] = quantization
    if device == "cuda" and settings.device_map:
        kwargs["device_map"] = settings.device_map
    try:
        tokenizer = _pretrained(AutoTokenizer, settings.id)
        model = _pretrained(AutoModelForCausalLM, settings.id, **kwargs)
    except ModelLoadError:
        raise
    except (OSError, ValueError, ImportError, RuntimeError) as error:
        raise _not_loadable(settings.id, error) from error
    if "device_map" not in kwargs and quantization is None:
        model.to(device)
    model.eval()
    eos_id = tokenizer.eos_token_id
    if eos_id is None:
        raise ModelLoadError(f"the tokenizer of {settings.id!r} defines no EOS token")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    stops = {int(eos_id)}
    # A model that opens a new ChatML turn has finished its own.
    for token in STOP_TOKENS:
        token_id = _token_id(tokenizer, token)
        if token_id is not None:
            stops.add(token_id)
    _log.info(
        "loaded %s on %s (dtype %s, quantization %s)",
        settings.id,
        model.device,
        model.dtype,
        settings.quantization,
    )
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        device=model.device,
        eos_id=int(eos_id),
        pad_id=int(pad_id),
        stop_ids=frozenset(stops),
    )


def free_memory(device: torch.device | str | None) -> None:
    """Collect garbage and give cached GPU memory back (what the seed's delete_model did)."""
    gc.collect()
    if torch.cuda.is_available() and (device is None or "cuda" in str(device)):
        torch.cuda.empty_cache()
