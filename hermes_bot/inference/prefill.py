"""A group of joining rows and the chunks their prompts are prefilled in.

The rows of a group sit in consecutive slots, longest prompt left first. Each
chunk feeds every row at most ``chunk`` tokens, aligned so that every row's
prompt ends in the group's last chunk (the rows get their first token
together). A chunk is split into parts of rows of similar length, each
left-padded to its own width, so padding stays under a quarter of a part.
Padding is written to columns past a row's end, which its later tokens
overwrite.
"""

from __future__ import annotations

from dataclasses import dataclass

from hermes_bot.inference.jobs import Job


@dataclass(eq=False)
class JoiningRow:
    """A row being prefilled: ``done`` of its ``ids`` are in its slot's cache already."""

    job: Job | None  # None once it was cancelled or timed out
    ids: list[int]
    done: int


@dataclass
class Part:
    """The inputs of one prefill pass over some consecutive rows of the group."""

    rows: slice  # offsets within the group
    ids: list[list[int]]
    columns: list[list[int]]  # where each input token's keys and values go
    reach: int  # columns attention reads


@dataclass
class Chunk:
    """One chunk of the group's prompts."""

    parts: list[Part]
    tokens: int  # prompt tokens computed (padding not counted)
    last: bool  # every row's prompt ends in this chunk


class PrefillGroup:
    """Rows joining together in slots ``first, first + 1, ...``."""

    def __init__(self, first: int, rows: list[JoiningRow], chunk: int, pad_id: int) -> None:
        self.first, self.rows = first, rows
        self._chunk, self._pad_id = chunk, pad_id

    @property
    def slots(self) -> slice:
        """The group's slots."""
        return slice(self.first, self.first + len(self.rows))

    def jobs(self) -> list[Job]:
        """The jobs still waiting for their prefill."""
        return [row.job for row in self.rows if row.job is not None]

    def drop(self, leaving: set[Job]) -> list[int]:
        """Forget the rows of ``leaving`` (their slots stay reserved); their slots."""
        dropped = []
        for offset, row in enumerate(self.rows):
            if row.job in leaving:
                row.job = None
                dropped.append(self.first + offset)
        return dropped

    def next_chunk(self) -> Chunk:
        """The next chunk's inputs; the rows count them as done."""
        left = [len(row.ids) - row.done for row in self.rows]
        chunks = -(-max(left) // self._chunk)
        takes = [min(self._chunk, max(0, n - (chunks - 1) * self._chunk)) for n in left]
        parts, start = [], 0
        for end in range(1, len(self.rows) + 1):
            if end == len(self.rows) or 4 * takes[end] < 3 * takes[start]:
                if takes[start]:  # rows with nothing in this chunk are not fed
                    parts.append(self._part(start, end, takes))
                start = end
        return Chunk(parts, sum(takes), last=chunks == 1)

    def _part(self, start: int, end: int, takes: list[int]) -> Part:
        width = max(takes[start:end])
        ids, columns = [], []
        for row, take in zip(self.rows[start:end], takes[start:end], strict=True):
            pads, stop = width - take, row.done + take
            ids.append([self._pad_id] * pads + row.ids[row.done : stop])
            columns.append([*range(stop, stop + pads), *range(row.done, stop)])
            row.done = stop
        reach = max(map(max, columns)) + 1
        return Part(slice(start, end), ids, columns, reach)
