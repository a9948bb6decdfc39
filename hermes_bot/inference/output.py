"""What a row's chosen tokens become: a stop, text deltas for streams, the result or an error."""

from __future__ import annotations

from hermes_bot.backend import FinishReason, GenerationResult
from hermes_bot.errors import GenerationError, HermesBotError
from hermes_bot.inference.detokenize import IncrementalDetokenizer, decode, piece_table
from hermes_bot.inference.jobs import Job, Outbox
from hermes_bot.inference.loading import LoadedModel
from hermes_bot.inference.metrics import Metrics


class RowOutput:
    """Records each row's tokens and hands its text and outcome to the outbox."""

    def __init__(self, loaded: LoadedModel, metrics: Metrics, outbox: Outbox) -> None:
        self._loaded, self._metrics, self._outbox = loaded, metrics, outbox
        piece_table(loaded.tokenizer)  # built and proven at loading, not in the first stream

    def advance(self, job: Job, token: int, now: float) -> bool:
        """Record ``token`` for ``job``; False when the job has finished (or failed)."""
        if job.first_token_at is None:
            job.first_token_at = now
            self._metrics.first_token(now - job.submitted)
        finish: FinishReason | None = None
        if token in self._loaded.stop_ids:
            finish = "stop"
        else:
            job.generated.append(token)
            if job.matcher is not None:
                try:
                    job.matcher.consume(token)
                except Exception as error:
                    self.fail(job, error)
                    return False
                if job.matcher.is_finished():
                    finish = "stop"
            if finish is None and len(job.generated) >= job.params.max_new_tokens:
                finish = "length"
            if job.stream:
                if job.detokenizer is None:
                    job.detokenizer = IncrementalDetokenizer(self._loaded.tokenizer)
                delta = job.detokenizer.push(token)
                if delta:
                    self._outbox.post(job, delta)
        if finish is None:
            return True
        self._finish(job, finish, now)
        return False

    def _finish(self, job: Job, finish: FinishReason, now: float) -> None:
        if job.stream:
            detokenizer = job.detokenizer or IncrementalDetokenizer(self._loaded.tokenizer)
            rest = detokenizer.flush()
            text = detokenizer.text
        else:
            rest, text = "", decode(self._loaded.tokenizer, job.generated)
        job.done = True
        self._metrics.finished(now - job.submitted)
        result = GenerationResult(
            text=text,
            prompt_tokens=len(job.prompt_ids),
            completion_tokens=len(job.generated),
            finish_reason=finish,
        )
        self._outbox.post(job, rest, result)

    def fail(self, job: Job, error: BaseException) -> None:
        """Deliver ``error`` to ``job`` (once)."""
        if job.done:
            return
        job.done = True
        self._metrics.finished(None)
        if not isinstance(error, HermesBotError):
            error = GenerationError(f"generation failed: {type(error).__name__}: {error}")
        self._outbox.post(job, outcome=error)
