"""The paged KV cache: a pool of fixed-size blocks, block tables, and the prefix cache.

The pool's size is set once (:func:`pool_tokens`): as configured, or room for
every request at the full context window, on a GPU at most what the weights
left free.

:class:`PagedCache` holds every layer's keys and values in a pool of
``BLOCK``-token blocks allocated at start-up. Each slot (a running row) has a
block table listing the blocks that hold its positions, so a row takes memory
for its own length only, a decode step writes one token per row into its
last block, a join writes only the joining rows' tokens, and a leave gives
its blocks back: nothing the cache holds is ever copied. Block 0 is scratch:
unused table entries point there, so padding and rows that are not decoding
write there (a row not decoding sits at :attr:`PagedCache.parked`, a position
past any row's end).

Attention reads each row's blocks through its table. With SDPA that is a
gather into the batch's ``[rows, kv_heads, width, head_dim]`` before the
kernel, as transformers' own ``paged|sdpa`` does (a paged attention kernel on
a GPU reads the blocks in place).

:class:`PrefixCache` remembers whole prompt blocks (the system prompt, a
conversation's earlier turns): a new row's table points at the cached blocks
instead of computing them again. Cached blocks live in the same pool and are
given back, least recently used first, when rows need the room.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from hermes_bot.config import ExecutorSettings
from hermes_bot.errors import ModelLoadError

# Tokens per block (also the prefix cache's unit of matching).
BLOCK = 16
SCRATCH = 0


# A default-sized KV cache on a GPU leaves this share of the card free (activations, logits,
# the attention's reads of the blocks).
GPU_RESERVE = 0.1


def pool_tokens(
    settings: ExecutorSettings, context_window: int, token_bytes: int, free_bytes: int | None
) -> int:
    """The pool's size in tokens: as configured; else room for every row at the full context
    window plus the prefix cache, on a GPU at most what ``free_bytes`` (the memory the
    weights left, less the reserve) holds."""
    if settings.kv_cache_tokens:
        return settings.kv_cache_tokens
    wanted = settings.max_batch_size * context_window + settings.prefix_cache_tokens
    if free_bytes is None or free_bytes >= wanted * token_bytes:
        return wanted
    fits = max(0, free_bytes) // token_bytes
    if fits < context_window:
        raise ModelLoadError(
            f"after the model's weights the GPU has room for {fits} tokens of KV cache, fewer "
            f"than one request of model.context_window = {context_window}: lower "
            f"model.context_window, load the model in 4 bits (model.quantization) or use a "
            f"bigger GPU"
        )
    return fits


def free_gpu_bytes(device: torch.device) -> int | None:
    """Memory a default-sized KV cache may take on ``device``; None off a GPU."""
    if device.type != "cuda":
        return None
    free, total = torch.cuda.mem_get_info(device)
    return int(free - GPU_RESERVE * total)


def _kv_shape(model: Any) -> tuple[int, int, int]:
    """(layers, key/value heads, head size) of a transformers decoder."""
    config = model.config.get_text_config()
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers, getattr(config, "num_key_value_heads", None) or heads, head_dim


def blocks_for(tokens: int) -> int:
    """Blocks that hold ``tokens`` tokens."""
    return -(-tokens // BLOCK)


class PagedCache:
    """The block pool, each slot's block table and the blocks' reference counts; the model's
    ``cache`` argument.

    Before each forward pass the runner calls :meth:`plan` with where the new
    tokens go; the model's attention layers then call :meth:`update`, which
    writes them into their blocks and returns the rows' keys and values.
    """

    def __init__(
        self,
        layers: int,
        blocks: int,
        slots: int,
        row_blocks: int,
        kv_heads: int,
        head_dim: int,
        **tensor: Any,
    ) -> None:
        shape = (blocks, BLOCK, kv_heads, head_dim)
        self.keys = [torch.zeros(shape, **tensor) for _ in range(layers)]
        self.values = [torch.zeros(shape, **tensor) for _ in range(layers)]
        device = tensor.get("device")
        # tables[slot, i]: the block holding positions i*BLOCK .. i*BLOCK+BLOCK-1 of that slot;
        # the last column is never given a block.
        self.tables = torch.full((slots, row_blocks + 1), SCRATCH, dtype=torch.long, device=device)
        self.parked = row_blocks * BLOCK
        self.blocks = blocks
        self._owned: list[list[int]] = [[] for _ in range(slots)]
        self._refs = [0] * blocks
        self._free = list(range(blocks - 1, SCRATCH, -1))  # a stack: low blocks first
        self._write = torch.zeros(0, dtype=torch.long, device=device)
        self._read = torch.zeros(0, dtype=torch.long, device=device)
        self._shape = (0, 0)

    @classmethod
    def for_model(
        cls, model: Any, tokens: int, slots: int, row_tokens: int, **_: Any
    ) -> PagedCache:
        """A pool of ``tokens`` (plus scratch) shaped for ``model`` (a transformers decoder),
        with tables for ``slots`` rows of up to ``row_tokens`` positions."""
        layers, kv_heads, head_dim = _kv_shape(model)
        return cls(
            layers,
            1 + blocks_for(tokens),
            slots,
            blocks_for(row_tokens),
            kv_heads,
            head_dim,
            dtype=model.dtype,
            device=model.device,
        )

    @staticmethod
    def token_bytes(model: Any) -> int:
        """Bytes one token's keys and values take across ``model``'s layers."""
        layers, kv_heads, head_dim = _kv_shape(model)
        return 2 * layers * kv_heads * head_dim * model.dtype.itemsize

    # -- blocks (host bookkeeping) --------------------------------------------------------

    @property
    def free(self) -> int:
        """Blocks nobody holds."""
        return len(self._free)

    @property
    def used(self) -> float:
        """Share of the pool's blocks (scratch aside) someone holds."""
        return 1 - len(self._free) / (self.blocks - 1)

    def blocks_held(self) -> int:
        """Blocks some row holds (what the running rows take)."""
        return len({block for owned in self._owned for block in owned})

    def owned(self, slot: int) -> list[int]:
        """The blocks of ``slot``, in position order."""
        return self._owned[slot]

    def hold(self, blocks: Sequence[int]) -> None:
        """One more holder of each of ``blocks``."""
        for block in blocks:
            self._refs[block] += 1

    def drop(self, blocks: Sequence[int]) -> None:
        """One holder less of each of ``blocks``; a block is free once nobody holds it."""
        for block in blocks:
            self._refs[block] -= 1
            if self._refs[block] == 0:
                self._free.append(block)

    def assign(self, slot: int, shared: Sequence[int], tokens: int) -> None:
        """Give ``slot`` the blocks ``shared`` (filled already, held by the caller for it) and
        fresh blocks up to ``tokens`` positions (the caller checked :attr:`free`)."""
        owned = [*shared]
        while len(owned) < blocks_for(tokens):
            owned.append(self._free.pop())
            self._refs[owned[-1]] += 1
        self._owned[slot] = owned
        self.tables[slot, : len(owned)] = torch.tensor(owned, device=self.tables.device)

    def grow(self, slots: Sequence[int]) -> None:
        """A fresh block at the end of each slot in ``slots`` (the caller checked :attr:`free`)."""
        columns, blocks = [], []
        for slot in slots:
            block = self._free.pop()
            self._refs[block] += 1
            columns.append(len(self._owned[slot]))
            self._owned[slot].append(block)
            blocks.append(block)
        device = self.tables.device
        where = (torch.tensor(list(slots), device=device), torch.tensor(columns, device=device))
        self.tables[where] = torch.tensor(blocks, device=device)

    def release(self, slot: int) -> None:
        """``slot`` is empty: its blocks go back unless someone else holds them."""
        self.drop(self._owned[slot])
        self._owned[slot] = []
        self.tables[slot] = SCRATCH

    def move(self, source: int, target: int) -> None:
        """The row in ``source`` now lives in ``target`` (its table moves, its blocks stay)."""
        self._owned[target], self._owned[source] = self._owned[source], []
        self.tables[target] = self.tables[source]
        self.tables[source] = SCRATCH

    # -- forward passes -------------------------------------------------------------------

    def plan(self, rows: slice, columns: torch.Tensor, width: int) -> None:
        """The next forward pass feeds slots ``rows``; input token ``[b, j]`` goes to position
        ``columns[b, j]`` of slot ``rows.start + b``, and attention reads ``width`` positions
        (a multiple of ``BLOCK``)."""
        tables = self.tables[rows]
        self._write = (tables.gather(1, columns // BLOCK) * BLOCK + columns % BLOCK).flatten()
        self._read = tables[:, : width // BLOCK].flatten()
        self._shape = (rows.stop - rows.start, width)

    def update(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        layer_idx: int,
        *_: Any,
        **__: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new keys and values (``[B, heads, W, dim]``) into their blocks; the rows'
        keys and values at positions ``0..width-1``."""
        rows, width = self._shape
        keys = self._write_read(self.keys[layer_idx], key_states, rows, width)
        return keys, self._write_read(self.values[layer_idx], value_states, rows, width)

    def _write_read(
        self, pool: torch.Tensor, states: torch.Tensor, rows: int, width: int
    ) -> torch.Tensor:
        heads, dim = pool.shape[2:]
        tokens = pool.view(-1, heads, dim)
        tokens.index_copy_(0, self._write, states.transpose(1, 2).flatten(0, 1).to(pool.dtype))
        read = pool.view(pool.shape[0], -1).index_select(0, self._read)  # one row per block
        return read.view(rows, width, heads, dim).transpose(1, 2)


class PrefixCache:
    """Blocks of prompts seen before, least recently used given back first.

    An entry is keyed by its parent entry's id and its own tokens, so a match
    means the whole prefix up to and including it is identical. Each entry
    holds a reference on its block.
    """

    def __init__(self, cache: PagedCache, max_tokens: int) -> None:
        self._cache = cache
        self._max_blocks = max_tokens // BLOCK
        self._entries: OrderedDict[tuple[int, tuple[int, ...]], tuple[int, int]] = OrderedDict()
        self._next_id = 1

    def __len__(self) -> int:
        """Blocks cached."""
        return len(self._entries)

    @property
    def enabled(self) -> bool:
        """False when nothing is ever cached."""
        return self._max_blocks > 0

    def match(self, ids: Sequence[int]) -> list[int]:
        """The cached blocks of ``ids``' longest cached prefix of whole blocks (leaving at
        least one token to compute)."""
        found: list[tuple[tuple[int, tuple[int, ...]], int]] = []
        parent = 0
        for tokens in _blocks(ids, (len(ids) - 1) // BLOCK):
            key = (parent, tokens)
            entry = self._entries.get(key)
            if entry is None:
                break
            parent = entry[0]
            found.append((key, entry[1]))
        for key, _ in reversed(found):  # the first block ends up the most recently used
            self._entries.move_to_end(key)
        return [block for _, block in found]

    def insert(self, ids: Sequence[int], blocks: Sequence[int]) -> None:
        """Remember the whole blocks of ``ids``, held in ``blocks`` (a row's table)."""
        if not self.enabled:
            return
        parent, keys = 0, []
        for tokens, block in zip(_blocks(ids, len(ids) // BLOCK), blocks, strict=False):
            key = (parent, tokens)
            entry = self._entries.get(key)
            if entry is None:
                entry = (self._next_id, block)
                self._next_id += 1
                self._entries[key] = entry
                self._cache.hold((block,))
            parent = entry[0]
            keys.append(key)
        for key in reversed(keys):  # a block is given back before the blocks it leads to
            self._entries.move_to_end(key)
        while len(self._entries) > self._max_blocks:
            self._evict_one()

    def make_room(self, blocks: int) -> None:
        """Give back cached blocks, oldest first, until ``blocks`` are free or none is left."""
        while self._cache.free < blocks and self._entries:
            self._evict_one()

    def _evict_one(self) -> None:
        _, (_, block) = self._entries.popitem(last=False)
        self._cache.drop((block,))


def _blocks(ids: Sequence[int], count: int) -> Iterator[tuple[int, ...]]:
    """The tokens of the first ``count`` whole blocks of ``ids``, one block at a time."""
    for start in range(0, count * BLOCK, BLOCK):
        yield tuple(ids[start : start + BLOCK])
