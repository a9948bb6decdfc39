"""Block Kit's published limits, checked the way Slack answers a bad message.

A message breaking one is refused with ``invalid_blocks`` (blocks) or
``msg_too_long`` (text), never silently cut. Also finds what a message would ping.
"""

from __future__ import annotations

import re
from typing import Any

MAX_BLOCKS = 50
MAX_TEXT = 40_000
SECTION_TEXT = 3_000
SECTION_FIELDS, FIELD_TEXT = 10, 2_000
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10
ACTION_ELEMENTS = 25
BUTTON_TEXT, BUTTON_VALUE, ID_LENGTH = 75, 2_000, 255
_NOT_SHOWN = {"value", "action_id", "block_id", "type", "url"}
_PING = re.compile(r"<(![a-z]+(?:\^[^|>]*)?|@[UW][A-Z0-9]+)(?:\|[^>]*)?>")


def _text_object(obj: Any, where: str, limit: int, kinds: tuple[str, ...]) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        return [f"{where}: must be a text object of type {' or '.join(kinds)}"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"{where}.text: must be a non-empty string"]
    if len(text) > limit:
        return [f"{where}.text: must be less than {limit + 1} characters"]
    return []


def _section(block: dict[str, Any], where: str) -> list[str]:
    errors: list[str] = []
    if "text" in block:
        errors += _text_object(
            block["text"], f"{where}.text", SECTION_TEXT, ("mrkdwn", "plain_text")
        )
    fields = block.get("fields")
    if fields is not None:
        if not isinstance(fields, list) or not 1 <= len(fields) <= SECTION_FIELDS:
            errors.append(f"{where}.fields: must hold 1 to {SECTION_FIELDS} items")
        else:
            for i, field in enumerate(fields):
                errors += _text_object(
                    field, f"{where}.fields[{i}]", FIELD_TEXT, ("mrkdwn", "plain_text")
                )
    if "text" not in block and fields is None:
        errors.append(f"{where}: must have text or fields")
    return errors


def _button(element: Any, where: str, action_ids: set[str]) -> list[str]:
    if not isinstance(element, dict) or element.get("type") != "button":
        return [f"{where}: only buttons are supported here"]
    errors = _text_object(element.get("text"), f"{where}.text", BUTTON_TEXT, ("plain_text",))
    action_id = element.get("action_id", "")
    if not isinstance(action_id, str) or len(action_id) > ID_LENGTH:
        errors.append(f"{where}.action_id: must be less than {ID_LENGTH + 1} characters")
    elif action_id and action_id in action_ids:
        errors.append(f"{where}.action_id: {action_id!r} is already used in this message")
    action_ids.add(action_id)
    if len(str(element.get("value", ""))) > BUTTON_VALUE:
        errors.append(f"{where}.value: must be less than {BUTTON_VALUE + 1} characters")
    return errors


def _block(block: Any, where: str, action_ids: set[str]) -> list[str]:
    if not isinstance(block, dict):
        return [f"{where}: must be an object"]
    kind = block.get("type")
    if kind == "section":
        return _section(block, where)
    if kind == "header":
        return _text_object(block.get("text"), f"{where}.text", HEADER_TEXT, ("plain_text",))
    if kind == "divider":
        return []
    if kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= CONTEXT_ELEMENTS:
            return [f"{where}.elements: must hold 1 to {CONTEXT_ELEMENTS} items"]
        return [
            e
            for i, el in enumerate(elements)
            for e in _text_object(
                el, f"{where}.elements[{i}]", SECTION_TEXT, ("mrkdwn", "plain_text")
            )
        ]
    if kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= ACTION_ELEMENTS:
            return [f"{where}.elements: must hold 1 to {ACTION_ELEMENTS} items"]
        return [
            e
            for i, el in enumerate(elements)
            for e in _button(el, f"{where}.elements[{i}]", action_ids)
        ]
    return [f"{where}.type: unsupported block type {kind!r}"]


def check_message(text: Any, blocks: Any) -> dict[str, Any] | None:
    """Slack's error body for a message breaking a limit, or None when it is fine."""
    if text is not None and not isinstance(text, str):
        return {"ok": False, "error": "invalid_arguments"}
    if not text and not blocks:
        return {"ok": False, "error": "no_text"}
    if text and len(text) > MAX_TEXT:
        return {"ok": False, "error": "msg_too_long"}
    if blocks is None:
        return None
    errors: list[str] = []
    if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
        errors.append(f"must provide an array of at most {MAX_BLOCKS} blocks")
    else:
        action_ids: set[str] = set()
        block_ids: set[str] = set()
        for i, block in enumerate(blocks):
            errors += _block(block, f"[json-pointer:/blocks/{i}]", action_ids)
            block_id = block.get("block_id") if isinstance(block, dict) else None
            if block_id is not None:
                if block_id in block_ids or len(str(block_id)) > ID_LENGTH:
                    errors.append(f"[json-pointer:/blocks/{i}/block_id] must be unique and short")
                block_ids.add(block_id)
    if not errors:
        return None
    return {
        "ok": False,
        "error": "invalid_blocks",
        "errors": errors,
        "response_metadata": {"messages": [f"[ERROR] {e}" for e in errors]},
    }


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        if value.get("type") == "plain_text":
            return []  # plain_text never links or pings
        return [s for key, item in value.items() if key not in _NOT_SHOWN for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def pings(message: dict[str, Any]) -> list[str]:
    """The special mentions (``<!here>``, ``<@U…>``, ``<!subteam^…>``) a message would fire."""
    found = []
    for value in _strings(message.get("text")) + _strings(message.get("blocks")):
        found += _PING.findall(value)
    return found
