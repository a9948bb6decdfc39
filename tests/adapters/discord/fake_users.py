"""What users do in the fake Discord: post messages, run slash commands, click buttons."""

from __future__ import annotations

import itertools

from tests.adapters.discord import fake_payloads as p

BOT_ID = APP_ID = 10
OWNER_ID = 20
ALICE, BOB, CAROL = 31, 32, 33
GUILD_ID, OTHER_GUILD_ID = 1000, 2000
GENERAL_ID, RANDOM_ID, THREAD_ID, OTHER_CHANNEL_ID = 1100, 1101, 1102, 2100
MEMBER_ROLE, VIP_ROLE = 1200, 1201
ATTACHMENT_LIMIT = 8 * 1024 * 1024


class UserActions:
    """Mixed into FakeDiscord: builds user events and dispatches them over the gateway."""

    guilds: list[p.Payload]
    messages: dict[int, p.Payload]
    bot_user: p.Payload
    _ids: itertools.count[int]
    _interactions: dict[str, p.Payload]

    async def dispatch(self, event: str, data: p.Payload) -> None:
        raise NotImplementedError

    def guild_of(self, channel_id: int) -> int | None:
        for guild in self.guilds:
            ids = [c["id"] for c in guild["channels"]] + [t["id"] for t in guild["threads"]]
            if str(channel_id) in ids:
                return int(guild["id"])
        return None

    def _where(
        self, user_id: int, channel_id: int, roles: tuple[int, ...], dm: bool
    ) -> tuple[int, int | None, p.Payload, p.Payload | None]:
        """(channel id, guild id, author, member) of a user acting in a channel or their DM."""
        if dm:
            channel_id = 5000 + user_id
        guild_id = None if dm else self.guild_of(channel_id)
        author = p.user(user_id, f"user{user_id}")
        member = p.member(author, roles) if guild_id is not None else None
        return channel_id, guild_id, author, member

    async def send_message(
        self,
        content: str,
        *,
        user_id: int = ALICE,
        channel_id: int = GENERAL_ID,
        roles: tuple[int, ...] = (MEMBER_ROLE,),
        mention_bot: bool = True,
        reply_to: p.Payload | None = None,
        bot: bool = False,
        dm: bool = False,
    ) -> p.Payload:
        """A user posts a message (in a guild channel, or in their DM with ``dm=True``)."""
        channel_id, guild_id, author, author_member = self._where(user_id, channel_id, roles, dm)
        author["bot"] = bot
        if mention_bot:
            content = f"<@{BOT_ID}> {content}"
        mentions = [self.bot_user] if mention_bot else []
        data = p.message(
            next(self._ids),
            channel_id,
            author,
            content,
            guild_id=guild_id,
            author_member=author_member,
            mentions=mentions,
            referenced=reply_to,
        )
        self.messages[int(data["id"])] = data
        await self.dispatch("MESSAGE_CREATE", data)
        return data

    async def _interact(
        self,
        kind: int,
        data: p.Payload,
        *,
        user_id: int,
        channel_id: int,
        roles: tuple[int, ...],
        message: p.Payload | None = None,
        dm: bool = False,
    ) -> p.Payload:
        channel_id, guild_id, author, author_member = self._where(user_id, channel_id, roles, dm)
        token = f"itoken-{next(self._ids)}"
        payload: p.Payload = {
            "id": str(next(self._ids)),
            "application_id": str(APP_ID),
            "type": kind,
            "token": token,
            "version": 1,
            "data": data,
            "channel_id": str(channel_id),
            "locale": "en-US",
            "app_permissions": "0",
            "entitlements": [],
            "attachment_size_limit": ATTACHMENT_LIMIT,
        }
        if guild_id is None:
            payload.update(user=author, context=1, channel=p.dm_channel(channel_id, author))
        else:
            channel = next(
                c
                for g in self.guilds
                for c in g["channels"] + g["threads"]
                if c["id"] == str(channel_id)
            )
            payload.update(
                guild_id=str(guild_id),
                guild_locale="en-US",
                context=0,
                channel=channel,
                member={**author_member, "permissions": "0"},  # type: ignore[dict-item]
                authorizing_integration_owners={"0": str(guild_id)},
            )
        if message is not None:
            payload["message"] = message
        self._interactions[token] = payload
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def slash(
        self,
        name: str,
        options: dict[str, str] | None = None,
        *,
        user_id: int = ALICE,
        channel_id: int = GENERAL_ID,
        roles: tuple[int, ...] = (MEMBER_ROLE,),
        dm: bool = False,
    ) -> p.Payload:
        """A user runs a slash command."""
        data = {
            "id": str(next(self._ids)),
            "name": name,
            "type": 1,
            "options": [{"name": k, "type": 3, "value": v} for k, v in (options or {}).items()],
        }
        return await self._interact(
            2, data, user_id=user_id, channel_id=channel_id, roles=roles, dm=dm
        )

    async def click(
        self,
        message: p.Payload,
        custom_id: str,
        *,
        user_id: int = ALICE,
        roles: tuple[int, ...] = (MEMBER_ROLE,),
    ) -> p.Payload:
        """A user clicks a button on ``message``."""
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._interact(
            3,
            data,
            user_id=user_id,
            channel_id=int(message["channel_id"]),
            roles=roles,
            message=message,
        )
