"""What each serving engine takes in a ``/v1/completions`` body beyond the OpenAI fields.

Sampling extras (top_k, repetition penalty) and constraint fields differ per
engine: vLLM ``structured_outputs`` (its old ``guided_*`` fields are silently
ignored since v0.12), SGLang ``json_schema``/``ebnf``, llama.cpp ``grammar``,
Ollama ``format``, TGI ``grammar``. ``generic`` sends only OpenAI fields.
llama.cpp gets GBNF even for forced calls: builds with LLGuidance compile its
``json_schema`` against a SentencePiece vocabulary that drops the word-start
space, which lets keys such as ``" name "`` through.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hermes_bot.backend import Constraint, GenerationParams
from hermes_bot.call_format import STOP_TOKENS
from hermes_bot.config import EngineName
from hermes_bot.inference.grammar_source import call_schema
from hermes_bot.inference.remote.gbnf import gbnf
from hermes_bot.tools import TOOLS

# The fields every OpenAI-compatible server takes (all a server that rejects others gets).
OPENAI_FIELDS = frozenset(
    {"model", "prompt", "stream", "stop", "max_tokens", "temperature", "top_p"}
)

# /v1/models "owned_by" values of the engines that set one.
_OWNERS: dict[str, EngineName] = {
    "vllm": "vllm",
    "sglang": "sglang",
    "llamacpp": "llama.cpp",
    "library": "ollama",
    "ollama": "ollama",
    "tgi": "tgi",
    "text-generation-inference": "tgi",
}


@dataclass(frozen=True)
class Engine:
    """One engine's dialect of the completions API."""

    name: EngineName
    top_k: bool = False
    repetition_penalty: str | None = None  # the field's name, where the engine has one
    json_schema: bool = False  # takes a JSON schema (forced calls are constrained)
    grammar: bool = False  # takes a GBNF grammar (auto mode is constrained)

    def body(
        self,
        model: str,
        prompt: str,
        params: GenerationParams,
        constraint: Constraint | None,
        *,
        plain: bool = False,
    ) -> dict[str, Any]:
        """A streamed ``/v1/completions`` body; ``plain``: OpenAI fields only."""
        body: dict[str, Any] = {
            "model": model,
            "prompt": prompt,
            "stream": True,
            "stop": list(STOP_TOKENS),
            **self.sampling_fields(params),
            **self.constraint_fields(constraint),
        }
        return {k: v for k, v in body.items() if k in OPENAI_FIELDS} if plain else body

    def constraint_fields(self, constraint: Constraint | None) -> dict[str, Any]:
        """The body fields constraining ``constraint``'s output (empty: not constrained)."""
        if constraint is None or constraint.mode == "off":
            return {}
        tools = [TOOLS[name] for name in constraint.tools] or list(TOOLS.values())
        if constraint.mode == "forced":
            if self.name == "llama.cpp":
                return {"grammar": gbnf("forced", constraint.dialect, tools)}
            if not self.json_schema:
                return {}
            schema = call_schema(tools)
            schema.pop("x-guidance", None)
            return _json_fields(self.name, schema)
        if not self.grammar:
            return {}
        return _grammar_fields(self.name, gbnf("auto", constraint.dialect, tools))

    def constrains(self, constraint: Constraint | None) -> bool:
        """Whether this engine enforces ``constraint`` (pydantic validates regardless)."""
        return bool(self.constraint_fields(constraint))

    def sampling_fields(self, params: GenerationParams) -> dict[str, Any]:
        """max_tokens, temperature, top_p, and the extras this engine takes."""
        fields: dict[str, Any] = {"max_tokens": params.max_new_tokens}
        if not params.do_sample:
            fields["temperature"] = 0.0
            return fields
        fields.update(temperature=params.temperature, top_p=params.top_p)
        if self.top_k and params.top_k > 0:
            fields["top_k"] = params.top_k
        if self.repetition_penalty and params.repetition_penalty != 1.0:
            fields[self.repetition_penalty] = params.repetition_penalty
        return fields


def _json_fields(engine: EngineName, schema: dict[str, Any]) -> dict[str, Any]:
    if engine == "vllm":
        return {"structured_outputs": {"json": schema}}
    if engine == "sglang":
        return {"json_schema": json.dumps(schema)}
    if engine == "ollama":
        return {"format": schema}
    return {"grammar": {"type": "json", "value": schema}}  # tgi


def _grammar_fields(engine: EngineName, grammar: str) -> dict[str, Any]:
    if engine == "vllm":
        return {"structured_outputs": {"grammar": grammar}}
    if engine == "sglang":
        return {"ebnf": grammar}
    return {"grammar": grammar}  # llama.cpp


_PROFILES: dict[EngineName, Engine] = {
    "vllm": Engine(
        "vllm", top_k=True, repetition_penalty="repetition_penalty", json_schema=True, grammar=True
    ),
    "sglang": Engine(
        "sglang",
        top_k=True,
        repetition_penalty="repetition_penalty",
        json_schema=True,
        grammar=True,
    ),
    "llama.cpp": Engine(
        "llama.cpp", top_k=True, repetition_penalty="repeat_penalty", json_schema=True, grammar=True
    ),
    "ollama": Engine("ollama", json_schema=True),
    "tgi": Engine("tgi", repetition_penalty="repetition_penalty", json_schema=True),
    "generic": Engine("generic"),
}


def engine(name: EngineName) -> Engine:
    """The profile of engine ``name``."""
    return _PROFILES[name]


def engine_from_models(listing: Any) -> EngineName:
    """The engine that served a ``/v1/models`` listing, from its ``owned_by``; else generic."""
    models = listing.get("data") if isinstance(listing, dict) else None
    for model in models if isinstance(models, list) else []:
        owner = str(model.get("owned_by", "")).lower() if isinstance(model, dict) else ""
        if owner in _OWNERS:
            return _OWNERS[owner]
    return "generic"


def context_from_models(listing: Any) -> int | None:
    """The per-request context length a ``/v1/models`` listing reports, if any."""
    models = listing.get("data") if isinstance(listing, dict) else None
    for model in models if isinstance(models, list) else []:
        if not isinstance(model, dict):
            continue
        for value in (model.get("max_model_len"), (model.get("meta") or {}).get("n_ctx")):
            if isinstance(value, int) and value > 0:
                return value
    return None
