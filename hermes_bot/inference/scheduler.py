"""The scheduler: which waiting requests join the batch, and the out-of-memory batch limit.

Requests join in arrival order while slots are free and no other group is
being prefilled. When a forward pass runs out of memory, its rows go back to
the front of the queue and the batch limit halves; a request that runs out of
memory alone, or too often, fails. The limit returns to the configured size
once the batch has drained and no retried request waits.
"""

from __future__ import annotations

import logging
from collections import deque

import torch

from hermes_bot.inference.jobs import Job

_log = logging.getLogger(__name__)

MAX_OOM_RETRIES = 8


class Scheduler:
    """Admission decisions for one worker (called with the worker's lock held)."""

    def __init__(self, max_batch_size: int) -> None:
        self._max = max_batch_size
        self.limit = max_batch_size

    def wants_more(self, waiting: deque[Job]) -> bool:
        """True while an idle worker should wait for more requests to start a batch with."""
        return len(waiting) < self.limit

    def admit(self, waiting: deque[Job], running: int, joining: bool) -> list[Job]:
        """Take the requests that join now from the front of ``waiting``."""
        if joining:
            return []
        if running == 0 and not any(job.oom_retries for job in waiting):
            self.limit = self._max
        admitted: list[Job] = []
        while waiting and running + len(admitted) < self.limit:
            admitted.append(waiting.popleft())
        return admitted

    def after_fault(
        self, jobs: list[Job], error: BaseException, involved: int
    ) -> tuple[list[Job], list[Job]]:
        """A forward pass over ``involved`` rows raised for ``jobs``: (to retry, to fail)."""
        if not isinstance(error, torch.cuda.OutOfMemoryError):
            return [], jobs
        retry = [job for job in jobs if not job.cancelled and job.oom_retries < MAX_OOM_RETRIES]
        if involved <= 1 or not retry:
            return [], jobs
        self.limit = max(1, involved // 2)
        _log.warning(
            "out of memory with %d rows; retrying %d requests, batch limit %d",
            involved,
            len(retry),
            self.limit,
        )
        for job in retry:
            job.oom_retries += 1
        return retry, [job for job in jobs if job not in retry]
