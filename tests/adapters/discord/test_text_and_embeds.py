"""Text splitting and embed limits (no sockets needed)."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from hermes_bot.adapters.discord.embeds import make_embed, tool_embed
from hermes_bot.adapters.text import split_text, truncate
from hermes_bot.tools import Joke, SongRecommendation


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(["ab", "c", " ", "\n", "```", "```py\n", "é", "`"]), max_size=1500
    ).map("".join),
    st.integers(min_value=40, max_value=2000),
)
@example("ab" * 18 + "`" * 9 + "ab", 40)  # a cut inside a run of backticks made a 4th fence
def test_split_chunks_are_non_empty_within_the_limit_with_balanced_fences(text, limit):
    chunks = split_text(text, limit)
    assert all(chunk.strip() and len(chunk) <= limit for chunk in chunks)
    if len(chunks) > 1:
        assert all(chunk.count("```") % 2 == 0 for chunk in chunks)
    assert bool(chunks) == bool(text.strip())


def test_split_keeps_every_word_and_reopens_code_fences_with_their_language():
    code = "\n".join(f"print({i})" for i in range(400))
    text = f"Intro words here.\n```python\n{code}\n```\nOutro words here."
    chunks = split_text(text, 2000)
    assert len(chunks) >= 2
    assert chunks[0].endswith("```") and chunks[1].startswith("```python\n")
    joined = "\n".join(chunks)
    assert all(f"print({i})" in joined for i in range(400))
    assert "Intro words here." in chunks[0] and "Outro words here." in chunks[-1]


def test_truncate_marks_a_cut():
    assert truncate("short", 10) == "short"
    assert truncate("x" * 300, 256) == "x" * 255 + "…"


def test_embeds_stay_within_discord_limits_whatever_the_model_wrote():
    embed = make_embed("t" * 999, "d" * 9999, [("n" * 999, "v" * 9999)] * 40)
    assert len(embed.title) <= 256 and len(embed.description) <= 4096
    assert len(embed.fields) <= 25
    assert all(len(f.name) <= 256 and len(f.value) <= 1024 for f in embed.fields)
    assert len(embed) <= 6000


def test_joke_answer_stays_inside_its_spoiler_and_mentions_are_escaped():
    embed = tool_embed(Joke(setup="Hey @everyone, why?", answer="Because || it can"))
    assert embed.description.endswith("||Because \\|\\| it can||")
    assert "@everyone" not in embed.description
    song = tool_embed(SongRecommendation(interest="x", recommended_song="AC/DC & Co? #1"))
    assert "AC%2FDC+%26+Co%3F+%231" in song.fields[1].value
