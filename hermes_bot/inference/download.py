"""Fetching a model from the Hugging Face hub: once, with bounded retries and a clear last word.

from_pretrained on a hub id retries every file on its own and warns twice per
try; here the files are listed once (with their sizes), fetched in one
snapshot with the hub's progress display, and a failed attempt is one log line.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from pathlib import Path
from typing import Any

from huggingface_hub import snapshot_download
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils import tqdm as hub_tqdm

from hermes_bot.errors import ModelLoadError

_log = logging.getLogger(__name__)

ATTEMPTS = 3
FIRST_DELAY = 2.0
# Sizes of well-known models, for the message when even the file listing failed.
KNOWN_SIZES = {"teknium/OpenHermes-2.5-Mistral-7B": 14_484_000_000}
# What from_pretrained reads: configs, tokenizer files, and one format of weights.
_SMALL_FILES = ("*.json", "*.model", "*.txt", "*.jinja", "*.tiktoken")


class OneBar(hub_tqdm):
    """The snapshot's bytes-downloaded bar only: one progress display, not one per file
    plus a files bar and a reconstruction bar."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("desc") != "Downloading bytes":
            kwargs["disable"] = True
        super().__init__(*args, **kwargs)


def _size(count: int | None) -> str:
    return f"about {count / 1e9:.1f} GB" if count else "size unknown"


def _patterns(files: list[str]) -> list[str]:
    weights = "*.safetensors" if any(f.endswith(".safetensors") for f in files) else "*.bin"
    return [*_SMALL_FILES, weights]


def _reason(error: BaseException) -> str:
    """The root cause in one short line (the hub wraps connection errors in its own)."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text[:200]}"


def download(model_id: str) -> Path:
    """Download ``model_id`` into the Hugging Face cache; its snapshot directory."""
    size = KNOWN_SIZES.get(model_id)
    delay = FIRST_DELAY
    for attempt in range(1, ATTEMPTS + 1):
        try:
            listing = snapshot_download(model_id, dry_run=True)
            patterns = _patterns([entry.filename for entry in listing])
            size = sum(
                entry.file_size or 0
                for entry in listing
                if any(fnmatch.fnmatch(entry.filename, pattern) for pattern in patterns)
            )
            _log.info("downloading %s (%s) into the Hugging Face cache", model_id, _size(size))
            return Path(snapshot_download(model_id, allow_patterns=patterns, tqdm_class=OneBar))
        except (RepositoryNotFoundError, RevisionNotFoundError):
            raise ModelLoadError(
                f"{model_id!r} is not a model on the Hugging Face hub, or it is private or "
                "gated: check model.id (or --model), or log in with `hf auth login`"
            ) from None
        except OSError as error:
            _log.warning(
                "downloading %s failed (attempt %d of %d): %s",
                model_id,
                attempt,
                ATTEMPTS,
                _reason(error),
            )
            last = error
        if attempt < ATTEMPTS:
            time.sleep(delay)
            delay *= 2
    raise ModelLoadError(
        f"cannot download {model_id} ({_size(size)}) after {ATTEMPTS} attempts "
        f"({_reason(last)}). Download it ahead, here or on another machine: "
        f"`hf download {model_id} --local-dir DIR`, then start with --model DIR "
        "(or model.id = DIR); HF_HUB_OFFLINE=1 keeps the bot off the network."
    )
