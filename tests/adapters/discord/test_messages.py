"""Messages: mentions, DMs and replies get answers users can see; everything else is ignored."""

from __future__ import annotations

from tests.adapters.discord.fake_discord import ALICE, BOB, GENERAL_ID, RANDOM_ID, THREAD_ID
from tests.adapters.discord.markup import BOOK, JOKE, SONG


async def test_mention_with_a_joke_call_shows_a_joke_embed_with_a_spoiler_and_button(
    fake, start_bot
):
    run = await start_bot([JOKE])
    await fake.send_message("tell me a joke")
    [message] = await fake.final_messages(GENERAL_ID)
    [embed] = message["embeds"]
    assert "Why did the GPU cross the road?" in embed["description"]
    assert "||To get to the other batch.||" in embed["description"]
    [row] = message["components"]
    assert row["components"][0]["label"] == "Another one"
    assert "<@10>" not in run.backend.requests[0].prompt


async def test_song_and_book_calls_become_cards_with_encoded_search_links(fake, start_bot):
    await start_bot([SONG, BOOK])
    await fake.send_message("a song please")
    [song] = await fake.final_messages(GENERAL_ID)
    await fake.send_message("and a book", channel_id=RANDOM_ID)
    [book] = await fake.final_messages(RANDOM_ID, turns=2)
    song_embed, book_embed = song["embeds"][0], book["embeds"][0]
    assert "Nightcall - Kavinsky" in song_embed["description"]
    links = song_embed["fields"][1]["value"]
    assert "search_query=Nightcall+-+Kavinsky" in links
    assert "Dune (Frank Herbert)" in book_embed["description"]
    assert "q=Dune+%28Frank+Herbert%29" in book_embed["fields"][1]["value"]
    assert song_embed["color"] == book_embed["color"]
    assert song_embed["footer"] == book_embed["footer"]


async def test_plain_chat_comes_back_as_text_and_the_mention_is_stripped(fake, start_bot):
    run = await start_bot(["Paris is the capital of France."])
    await fake.send_message("what is the capital of France?")
    [message] = await fake.final_messages(GENERAL_ID)
    assert message["content"] == "Paris is the capital of France."
    assert message["embeds"] == []
    prompt = run.backend.requests[0].prompt
    assert "what is the capital of France?" in prompt
    assert "<@10>" not in prompt


async def test_a_5000_character_answer_is_split_into_messages_under_2000(fake, start_bot):
    words = " ".join(f"word{i}" for i in range(800))
    answer = f"Here you go:\n```python\n{words}\n```\nDone."
    await start_bot([answer], chunk=500)
    await fake.send_message("write a lot")
    messages = await fake.final_messages(GENERAL_ID)
    contents = [m["content"] for m in messages]
    assert len(contents) == 4
    assert all(len(content) <= 2000 for content in contents)
    assert all(content.count("```") % 2 == 0 for content in contents)
    joined = " ".join(contents)
    assert all(f"word{i}" in joined for i in range(800))


async def test_model_written_mentions_never_ping(fake, start_bot):
    await start_bot(["Sure! @everyone and @here, look at <@32>."])
    await fake.send_message("ping everyone")
    await fake.final_messages(GENERAL_ID)
    writes = fake.requests("POST", "channels", "*", "messages") + fake.requests(
        "PATCH", "channels", "*", "messages"
    )
    assert writes
    assert all(call.json["allowed_mentions"]["parse"] == [] for call in writes)
    assert all(not call.json["allowed_mentions"].get("replied_user") for call in writes)


async def test_a_reply_to_the_bots_message_continues_that_conversation(fake, start_bot):
    run = await start_bot(["My favourite colour is teal.", "Because teal is calm."])
    await fake.send_message("what's your favourite colour?", channel_id=THREAD_ID)
    [first] = await fake.final_messages(THREAD_ID)
    await fake.send_message("why?", channel_id=THREAD_ID, mention_bot=False, reply_to=first)
    messages = await fake.final_messages(THREAD_ID, turns=2)
    assert messages[1]["content"] == "Because teal is calm."
    second_prompt = run.backend.requests[1].prompt
    assert "My favourite colour is teal." in second_prompt
    assert await run.pipeline.history_length(f"discord:channel:{THREAD_ID}") == 4


async def test_dms_are_answered_per_user(fake, start_bot):
    run = await start_bot(["Hi Alice!", "Hi Bob!"])
    await fake.send_message("hello", dm=True, mention_bot=False, user_id=ALICE)
    await fake.final_messages(5000 + ALICE)
    await fake.send_message("hello", dm=True, mention_bot=False, user_id=BOB)
    [bob] = await fake.final_messages(5000 + BOB, turns=2)
    assert bob["content"] == "Hi Bob!"
    assert await run.pipeline.history_length(f"discord:dm:{ALICE}") == 2
    assert await run.pipeline.history_length(f"discord:dm:{BOB}") == 2


async def test_bots_and_unaddressed_messages_are_ignored(fake, start_bot):
    run = await start_bot(["The only answer."])
    await fake.send_message("I'm a bot", bot=True)
    await fake.send_message("just chatting", mention_bot=False)
    barrier = await fake.send_message("this one is for you")  # events arrive in order
    [reply] = await fake.final_messages(GENERAL_ID)
    assert reply["message_reference"]["message_id"] == barrier["id"]
    [request] = run.backend.requests
    assert "this one is for you" in request.prompt
    assert len(fake.requests("POST", "channels", "*", "messages")) == 1


async def test_respond_in_channels_answer_without_a_mention(fake, start_bot):
    run = await start_bot(["Answer in random."], respond_in=[RANDOM_ID])
    await fake.send_message("no mention here", channel_id=GENERAL_ID, mention_bot=False)
    await fake.send_message("no mention here either", channel_id=RANDOM_ID, mention_bot=False)
    [message] = await fake.final_messages(RANDOM_ID)
    assert message["content"] == "Answer in random."
    assert len(run.backend.requests) == 1
    assert fake.bot_messages(GENERAL_ID) == []
    assert fake.requests("POST", "channels", str(RANDOM_ID), "typing")


async def test_require_mention_off_answers_everywhere_allowed(fake, start_bot):
    run = await start_bot(["Answer in general."], require_mention=False)
    await fake.send_message("no mention needed", channel_id=GENERAL_ID, mention_bot=False)
    [message] = await fake.final_messages(GENERAL_ID)
    assert message["content"] == "Answer in general."
    assert len(run.backend.requests) == 1
