"""Constrained decoding with llguidance (DESIGN.md section 6).

:class:`GrammarCompiler` compiles one grammar per (mode, dialect, tools) and
hands out a :class:`RowMatcher` per request row. Each row computes its next
token mask on a background thread as soon as it has consumed a token, so the
masks are computed while the model runs its next forward pass; ``fill_masks``
only waits for them, unpacks one bitmask for the batch and applies it.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import llguidance
import llguidance.hf
import numpy as np
import torch

from hermes_bot.backend import Constraint, Dialect
from hermes_bot.errors import GrammarError
from hermes_bot.inference.grammar_source import lark_source
from hermes_bot.tools import TOOLS, Tool, find_tool

_log = logging.getLogger(__name__)

_GrammarKey = tuple[str, str, tuple[str, ...]]


class _MaskThread:
    """One daemon thread computing row masks in the order rows ask for them.

    A row holds its ``ready`` lock from the moment it asks until its mask is
    written; waiting for a mask is acquiring that lock (plain C locks and a
    SimpleQueue keep the per-row overhead to a few microseconds).
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[RowMatcher | None] = queue.SimpleQueue()
        threading.Thread(
            target=_serve, args=(self._queue,), name="grammar-masks", daemon=True
        ).start()
        # The thread ends once neither the compiler nor any row can submit work any more.
        weakref.finalize(self, self._queue.put, None)

    def submit(self, row: RowMatcher) -> None:
        self._queue.put(row)


def _serve(rows: queue.SimpleQueue[RowMatcher | None]) -> None:
    while (row := rows.get()) is not None:
        row._compute()
        del row  # hold no reference while idle


class RowMatcher:
    """The grammar state of one generating row.

    The llguidance matcher is not thread-safe, so every access waits for the
    row's in-flight mask computation first.
    """

    def __init__(self, matcher: llguidance.LLMatcher, words: int, eos: int, thread: _MaskThread):
        self._matcher = matcher
        self._bits = np.zeros(words, dtype=np.int32)
        self._eos = eos
        self._thread = thread
        self._finished = False
        self._error: Exception | None = None
        self._ready = threading.Lock()
        self._schedule()

    def _schedule(self) -> None:
        self._ready.acquire()
        self._thread.submit(self)

    def _compute(self) -> None:
        """Runs on the mask thread; llguidance drops the GIL while it writes the mask."""
        try:
            self._matcher.unsafe_compute_mask_ptr(self._bits.ctypes.data, self._bits.nbytes)
            if not self._bits.any():  # a dead end must still let the row stop cleanly
                self._allow_only_eos()
        except Exception as error:  # handed to the decode thread by _wait
            self._error = error
        finally:
            self._ready.release()

    def _allow_only_eos(self) -> None:
        self._bits[:] = 0
        self._bits.view(np.uint32)[self._eos // 32] = 1 << (self._eos % 32)

    def _wait(self) -> None:
        with self._ready:
            pass
        if self._error is not None:
            error, self._error = self._error, None
            raise GrammarError(f"computing a token mask failed: {error}") from error

    def mask(self) -> np.ndarray:
        """The packed mask of allowed next tokens (bit ``t`` of the array = token ``t``)."""
        self._wait()
        return self._bits

    def consume(self, token_id: int) -> None:
        """Advance past the sampled token and start computing the next mask."""
        self._wait()
        if self._finished:
            return
        if not self._matcher.consume_token(token_id):
            _log.warning("grammar rejected token %d: %s", token_id, self._matcher.get_error())
        if self._matcher.is_stopped():
            self._finished = True
            self._allow_only_eos()
        else:
            self._schedule()

    def is_finished(self) -> bool:
        """True when the grammar is complete and nothing may follow: the row must stop."""
        return self._finished


class GrammarCompiler:
    """Compiles constraint grammars for one tokenizer and applies their masks to logits."""

    def __init__(self, tokenizer: Any) -> None:
        try:
            self._tokenizer = llguidance.hf.from_tokenizer(tokenizer)
        except (ValueError, TypeError) as error:
            raise GrammarError(f"llguidance cannot use this tokenizer: {error}") from error
        self._eos = self._tokenizer.eos_token
        self._vocab = self._tokenizer.vocab_size
        self._words = (self._vocab + 31) // 32
        self._limits = llguidance.LLParserLimits(verbose_errors=False)
        self._templates: dict[_GrammarKey, llguidance.LLMatcher] = {}
        self._lock = threading.Lock()
        self._thread = _MaskThread()

    def check(self, constraints: Iterable[Constraint]) -> None:
        """Compile the grammars of ``constraints`` now; GrammarError if one cannot be built."""
        for constraint in constraints:
            if constraint.mode != "off":
                self._template(constraint)

    def matcher(self, constraint: Constraint) -> RowMatcher | None:
        """A fresh matcher for one row, or None when the constraint is off."""
        if constraint.mode == "off":
            return None
        template = self._template(constraint)
        with self._lock:
            matcher = template.deep_copy()
        return RowMatcher(matcher, self._words, self._eos, self._thread)

    def fill_masks(self, logits: torch.Tensor, matchers: Sequence[RowMatcher | None]) -> None:
        """Set disallowed tokens to -inf, in place, in the rows that have a matcher."""
        rows = [row for row, matcher in enumerate(matchers) if matcher is not None]
        if not rows:
            return
        bitmask = np.full((len(matchers), self._words), -1, dtype=np.int32)
        for row in rows:
            bitmask[row] = matchers[row].mask()  # type: ignore[union-attr]
        width = min(logits.shape[-1], self._vocab)
        bits = np.unpackbits(bitmask.view(np.uint8), axis=1, bitorder="little")[:, :width]
        allowed = torch.from_numpy(bits).view(torch.bool).to(logits.device)
        kept = logits[:, :width]
        torch.where(allowed, kept, logits.new_full((), float("-inf")), out=kept)
        if logits.shape[-1] > width:  # padded logits beyond the tokenizer's vocabulary
            logits[rows, width:] = float("-inf")

    def _template(self, constraint: Constraint) -> llguidance.LLMatcher:
        tools = _resolve_tools(constraint.tools)
        key = (constraint.mode, constraint.dialect, tuple(tool.__name__ for tool in tools))
        with self._lock:
            template = self._templates.get(key)
            if template is None:
                template = self._compile(constraint, tools)
                self._templates[key] = template
        return template

    def _compile(self, constraint: Constraint, tools: list[type[Tool]]) -> llguidance.LLMatcher:
        what = f"{constraint.mode} {constraint.dialect} grammar for {[t.__name__ for t in tools]}"
        try:
            source = lark_source(constraint.mode, constraint.dialect, tools, self._literal)
        except ValueError as error:
            raise GrammarError(f"cannot build the {what}: {error}") from error
        grammar = llguidance.LLMatcher.grammar_from_lark(source)
        matcher = llguidance.LLMatcher(self._tokenizer, grammar, log_level=0, limits=self._limits)
        if matcher.is_error():
            raise GrammarError(f"llguidance cannot compile the {what}: {matcher.get_error()}")
        for warning in matcher.get_grammar_warnings():
            _log.warning("%s: %s", what, warning)
        _log.debug("compiled the %s", what)
        return matcher

    def _literal(self, text: str) -> str:
        """``text`` as a grammar element: its special token if the tokenizer has one."""
        ids = self._tokenizer.tokenize_str(text, parse_special=True)
        if len(ids) == 1 and self._tokenizer.is_special_token(ids[0]):
            return f"<[{ids[0]}]>"
        return json.dumps(text)


def startup_constraints(dialect: Dialect) -> list[Constraint]:
    """Every constraint the bot asks for: forced per tool and for any tool, and auto."""
    forced = [Constraint("forced", dialect, (name,)) for name in TOOLS]
    return [*forced, Constraint("forced", dialect), Constraint("auto", dialect)]


def compiler_factory(dialect: Dialect) -> Callable[[Any], GrammarCompiler]:
    """Builds the compiler once the tokenizer is loaded and compiles every grammar up front,
    so a grammar the library rejects stops start-up instead of failing a request."""

    def build(tokenizer: Any) -> GrammarCompiler:
        compiler = GrammarCompiler(tokenizer)
        compiler.check(startup_constraints(dialect))
        return compiler

    return build


def _resolve_tools(names: Sequence[str]) -> list[type[Tool]]:
    """The tools called ``names`` (all tools when empty); GrammarError for an unknown name."""
    if not names:
        return list(TOOLS.values())
    tools: list[type[Tool]] = []
    for name in names:
        tool = find_tool(name)
        if tool is None:
            raise GrammarError(f"constraint names unknown tool {name!r}; known: {', '.join(TOOLS)}")
        if tool not in tools:
            tools.append(tool)
    return tools
