"""The KV cache: pre-allocated per-row slots, and the prefix cache that feeds them.

:class:`SlotCache` holds every layer's keys and values in one tensor of shape
``[slots, kv_heads, capacity, head_dim]`` allocated at start-up. A running row
owns one slot and its token at position ``p`` sits in column ``p``, so a decode
step writes one column per row, a join writes only the joining rows' columns,
and attention reads a view of the first rows and columns: nothing the cache
holds is copied by a step. Rows are kept in the lowest slots; a leave moves the
highest row into the freed slot (one row's columns, mutating the cache).

:class:`PrefixCache` keeps the keys and values of prompt blocks (the system
prompt, a conversation's earlier turns) so a new row copies them into its slot
instead of prefilling them again.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch

_log = logging.getLogger(__name__)

# Tokens per prefix-cache block (a prompt is matched block by block).
BLOCK = 16


class SlotCache:
    """Pre-allocated keys and values, one slot per running row; the model's ``cache`` argument.

    Before each forward pass the runner calls :meth:`plan` with where the new
    tokens go; the model's attention layers then call :meth:`update`, which
    writes them in place and returns views of the columns to attend to.
    """

    def __init__(
        self, layers: int, slots: int, capacity: int, kv_heads: int, head_dim: int, **tensor: Any
    ) -> None:
        shape = (slots, kv_heads, capacity, head_dim)
        self.keys = [torch.zeros(shape, **tensor) for _ in range(layers)]
        self.values = [torch.zeros(shape, **tensor) for _ in range(layers)]
        self.slots, self.capacity = slots, capacity
        self._rows = slice(0, 0)
        self._index = torch.zeros(0, dtype=torch.long)
        self._columns = torch.zeros(0, dtype=torch.long)
        self._width = 0

    @classmethod
    def for_model(cls, model: Any, slots: int, capacity: int) -> SlotCache:
        """A cache shaped for ``model`` (a transformers decoder) with ``slots`` x ``capacity``."""
        config = model.config.get_text_config()
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        return cls(
            config.num_hidden_layers,
            slots,
            capacity,
            kv_heads,
            head_dim,
            dtype=model.dtype,
            device=model.device,
        )

    @property
    def bytes_per_token(self) -> int:
        """Bytes one token's keys and values take across all layers."""
        first = self.keys[0]
        return 2 * len(self.keys) * first.shape[1] * first.shape[3] * first.element_size()

    @property
    def bytes_allocated(self) -> int:
        """Bytes the cache holds, used or not."""
        return self.bytes_per_token * self.slots * self.capacity

    def plan(self, rows: slice, columns: torch.Tensor, width: int) -> None:
        """The next forward pass feeds slots ``rows``; input token ``[b, j]`` goes to column
        ``columns[b, j]`` of slot ``rows.start + b``, and attention reads ``width`` columns."""
        self._rows = rows
        self._index = torch.arange(rows.start, rows.stop, device=columns.device).unsqueeze(1)
        self._columns = columns
        self._width = width

    def update(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        layer_idx: int,
        *_: Any,
        **__: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new keys and values (``[B, heads, W, dim]``) in place; the columns to read."""
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys[self._index, :, self._columns] = key_states.transpose(1, 2).to(keys.dtype)
        values[self._index, :, self._columns] = value_states.transpose(1, 2).to(values.dtype)
        return keys[self._rows, :, : self._width], values[self._rows, :, : self._width]

    def move(self, source: int, target: int, length: int) -> None:
        """Copy the first ``length`` columns of slot ``source`` into slot ``target``."""
        for tensor in (*self.keys, *self.values):
            tensor[target, :, :length] = tensor[source, :, :length]

    def write(self, slot: int, blocks: torch.Tensor) -> None:
        """Put ``blocks`` (``[layers, 2, kv_heads, tokens, dim]``) at the start of ``slot``."""
        tokens = blocks.shape[3]
        for layer, (keys, values) in enumerate(zip(self.keys, self.values, strict=True)):
            keys[slot, :, :tokens] = blocks[layer, 0]
            values[slot, :, :tokens] = blocks[layer, 1]

    def read(self, slot: int, start: int, stop: int) -> torch.Tensor:
        """Columns ``start:stop`` of ``slot``, copied, as ``[layers, 2, kv_heads, tokens, dim]``."""
        return torch.stack(
            [
                torch.stack((keys[slot, :, start:stop], values[slot, :, start:stop]))
                for keys, values in zip(self.keys, self.values, strict=True)
            ]
        )


class PrefixCache:
    """Keys and values of prompt blocks, least recently used evicted first.

    A block is keyed by its parent block's id and its own tokens, so a match
    means the whole prefix up to and including it is identical.
    """

    def __init__(self, max_tokens: int) -> None:
        self._max_blocks = max_tokens // BLOCK
        self._blocks: OrderedDict[tuple[int, tuple[int, ...]], tuple[int, torch.Tensor]] = (
            OrderedDict()
        )
        self._next_id = 1

    def match(self, ids: Sequence[int]) -> tuple[int, torch.Tensor | None]:
        """How many leading tokens of ``ids`` are cached (whole blocks, leaving at least one
        token to compute) and their keys and values, joined."""
        found: list[tuple[tuple[int, tuple[int, ...]], torch.Tensor]] = []
        parent = 0
        for start in range(0, len(ids) - 1 - BLOCK + 1, BLOCK):
            key = (parent, tuple(ids[start : start + BLOCK]))
            entry = self._blocks.get(key)
            if entry is None:
                break
            parent = entry[0]
            found.append((key, entry[1]))
        if not found:
            return 0, None
        for key, _ in reversed(found):  # the first block ends up the most recently used
            self._blocks.move_to_end(key)
        return len(found) * BLOCK, torch.cat([blocks for _, blocks in found], dim=3)

    def insert(self, ids: Sequence[int], cache: SlotCache, slot: int) -> None:
        """Remember the whole blocks of ``ids``, whose keys and values sit in ``slot``."""
        if self._max_blocks == 0:
            return
        parent, keys = 0, []
        for start in range(0, len(ids) - BLOCK + 1, BLOCK):
            key = (parent, tuple(ids[start : start + BLOCK]))
            entry = self._blocks.get(key)
            if entry is None:
                entry = (self._next_id, cache.read(slot, start, start + BLOCK))
                self._next_id += 1
                self._blocks[key] = entry
            parent = entry[0]
            keys.append(key)
        for key in reversed(keys):  # a block is evicted before the blocks it leads to
            self._blocks.move_to_end(key)
        while len(self._blocks) > self._max_blocks:
            self._blocks.popitem(last=False)
