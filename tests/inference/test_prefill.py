"""Prefill chunks: end-aligned prompts, parts of similar length, padding past each row's end."""

from __future__ import annotations

from hermes_bot.inference.prefill import JoiningRow, PrefillGroup

PAD = -1


def group(lengths: list[int], chunk: int, done: int = 0) -> PrefillGroup:
    rows = [JoiningRow(None, list(range(n)), done) for n in lengths]
    return PrefillGroup(3, rows, chunk, PAD)


def test_rows_of_similar_length_share_a_part_and_padding_stays_small() -> None:
    chunk = group([100, 90, 40, 10], chunk=512).next_chunk()
    assert chunk.last and chunk.tokens == 240
    assert [(p.rows.start, p.rows.stop) for p in chunk.parts] == [(0, 2), (2, 3), (3, 4)]
    padding = sum(row.count(PAD) for part in chunk.parts for row in part.ids)
    assert padding == 10


def test_every_prompt_ends_in_the_last_chunk_and_padding_goes_past_the_end() -> None:
    prefill = group([40, 10], chunk=16, done=2)
    chunks = [prefill.next_chunk() for _ in range(3)]
    assert [c.last for c in chunks] == [False, False, True]
    # Row 1 (8 tokens to go) is fed only in the last chunk, ending with row 0.
    assert [[(p.rows.start, p.rows.stop) for p in c.parts] for c in chunks[:2]] == [[(0, 1)]] * 2
    last = chunks[-1].parts
    tails = [row[-1] for part in last for row in part.ids]
    assert tails == [39, 9]
    for chunk in chunks:
        for part in chunk.parts:
            for ids, columns in zip(part.ids, part.columns, strict=True):
                real = [c for token, c in zip(ids, columns, strict=True) if token != PAD]
                pads = [c for token, c in zip(ids, columns, strict=True) if token == PAD]
                assert real == sorted(real) and all(p > max(real, default=-1) for p in pads)
                assert all(ids[i] == columns[i] for i in range(len(ids)) if ids[i] != PAD)
    assert [row.done for row in prefill.rows] == [40, 10]
