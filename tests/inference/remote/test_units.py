"""The remote backend's pure parts: config, engine fields, stop handling, GBNF shape."""

from __future__ import annotations

import json

import pytest

from hermes_bot import cli
from hermes_bot.backend import Constraint, GenerationParams
from hermes_bot.config import RemoteSettings
from hermes_bot.inference.remote.client import _StopCutter
from hermes_bot.inference.remote.engines import engine, engine_from_models
from hermes_bot.inference.remote.gbnf import gbnf
from hermes_bot.tools import TOOLS, Joke


def test_remote_urls_on_the_command_line_replace_the_config(tmp_path):
    from hermes_bot.config_sources import find_config_file

    config = tmp_path / "config.toml"
    config.write_text('[remote]\nurls = ["http://a:1/v1"]\nengine = "vllm"\n')
    args = cli.parse_args(
        ["--config", str(config), "--remote", "http://b:2/v1/", "--remote", "http://c:3/v1"]
    )
    settings = cli.build_settings(args, find_config_file(args.config))
    assert settings.remote.urls == ["http://b:2/v1", "http://c:3/v1"]
    assert settings.remote.engine == "vllm"
    assert type(cli.make_backend(settings)).__name__ == "RemoteBackend"


def test_a_bad_remote_url_is_a_clear_error(capsys):
    assert cli.main(["--remote", "localhost:8000", "--console"]) == 2
    assert "is not an http(s) URL" in capsys.readouterr().err


def test_the_api_key_comes_from_the_environment_and_stays_secret():
    from hermes_bot.config_loader import load_settings

    settings = load_settings(environ={"HERMES_BOT_REMOTE__API_KEY": "sk-secret"})
    assert settings.remote.api_key is not None
    assert settings.remote.api_key.get_secret_value() == "sk-secret"
    assert "sk-secret" not in repr(settings)


def test_each_engine_gets_its_own_constraint_fields():
    forced = Constraint("forced", "functioncall", ("Joke",))
    auto = Constraint("auto", "tool_call")
    assert set(engine("vllm").constraint_fields(forced)["structured_outputs"]) == {"json"}
    assert set(engine("vllm").constraint_fields(auto)["structured_outputs"]) == {"grammar"}
    assert json.loads(engine("sglang").constraint_fields(forced)["json_schema"])["properties"]
    assert "root ::=" in engine("sglang").constraint_fields(auto)["ebnf"]
    assert "root ::= payload" in engine("llama.cpp").constraint_fields(forced)["grammar"]
    assert engine("ollama").constraint_fields(forced)["format"]["properties"]["name"] == {
        "const": "Joke"
    }
    assert engine("ollama").constraint_fields(auto) == {}
    assert engine("tgi").constraint_fields(forced)["grammar"]["type"] == "json"
    assert engine("generic").constraint_fields(forced) == {}
    assert "guided_json" not in str(engine("vllm").constraint_fields(forced))


def test_sampling_fields_only_where_the_engine_takes_them():
    params = GenerationParams(max_new_tokens=9, top_k=5, repetition_penalty=1.3)
    assert engine("llama.cpp").sampling_fields(params)["repeat_penalty"] == 1.3
    assert engine("vllm").sampling_fields(params)["top_k"] == 5
    assert set(engine("generic").sampling_fields(params)) == {"max_tokens", "temperature", "top_p"}
    greedy = GenerationParams(do_sample=False)
    assert engine("vllm").sampling_fields(greedy)["temperature"] == 0.0


def test_the_engine_is_read_from_the_models_listing():
    assert engine_from_models({"data": [{"id": "x", "owned_by": "llamacpp"}]}) == "llama.cpp"
    assert engine_from_models({"data": [{"id": "x", "owned_by": "vllm"}]}) == "vllm"
    assert engine_from_models({"data": [{"id": "x", "owned_by": "local"}]}) == "generic"
    assert engine_from_models({"unexpected": True}) == "generic"


@pytest.mark.parametrize(
    ("deltas", "shown"),
    [
        (["Hello", " world<|im_", "end|>ignored"], ["Hello", " world"]),
        (["a<", "b"], ["a", "<b"]),
        (["done<|im_start|>user"], ["done"]),
        (["x<|im_e"], ["x", "<|im_e"]),  # a held-back prefix is released at the end
    ],
)
def test_stop_strings_are_cut_even_when_split_across_chunks(deltas, shown):
    cutter = _StopCutter()
    out = [cutter.feed(d) for d in deltas]
    if not cutter.stopped:
        out.append(cutter.flush())
    assert [o for o in out if o] == shown


def test_grammar_strings_follow_the_tools_max_lengths():
    grammar = gbnf("forced", "functioncall", [Joke])
    assert "str-300 ::=" in grammar and "str-1000 ::=" in grammar
    assert grammar.count("::=") == len(set(line.split(" ::=")[0] for line in grammar.splitlines()))
    auto = gbnf("auto", "tool_call", list(TOOLS.values()))
    assert '"<tool_call>\\n" payload' in auto


def test_remote_settings_reject_duplicate_urls():
    with pytest.raises(ValueError, match="listed twice"):
        RemoteSettings(urls=["http://a/v1", "http://a/v1/"])
