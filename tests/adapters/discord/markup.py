"""Model completions in OpenHermes' function-call markup, for scripted backends."""

from __future__ import annotations

import json


def call(name: str, **arguments: str) -> str:
    payload = json.dumps({"name": name, "arguments": arguments})
    return f"<multiplefunctions><functioncall>{payload}</functioncall></multiplefunctions>"


JOKE = call("Joke", setup="Why did the GPU cross the road?", answer="To get to the other batch.")
SONG = call("SongRecommendation", interest="synthwave", recommended_song="Nightcall - Kavinsky")
BOOK = call("BookRecommendation", interest="space opera", recommended_book="Dune (Frank Herbert)")
