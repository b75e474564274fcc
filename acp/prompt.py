"""Checks on prompt content, done before a turn starts (cheap: no router_core needed)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from acp.schema import AudioContent, ContentBlock, ImageContent


def decoded_size(data: str) -> int:
    """Bytes a base64 string decodes to, without decoding it."""
    return len(data.rstrip("=")) * 3 // 4


class PromptError(ValueError):
    """Prompt content the agent cannot take (answered with -32602 and this message)."""


def check_prompt(blocks: Sequence[ContentBlock], *, image: bool, max_image_bytes: int) -> None:
    """Refuse content the agent did not advertise or cannot use, with a reason."""
    if not blocks:
        raise PromptError("the prompt is empty")
    for index, block in enumerate(blocks):
        if isinstance(block, AudioContent):
            raise PromptError(f"prompt[{index}]: audio is not supported by this agent")
        if isinstance(block, ImageContent):
            if not image:
                raise PromptError(f"prompt[{index}]: images are not supported by this agent")
            size = decoded_size(block.data)
            if size > max_image_bytes:
                raise PromptError(
                    f"prompt[{index}]: the image is {size} bytes; the limit is "
                    f"{max_image_bytes} bytes"
                )
            if not block.mime_type.startswith("image/"):
                raise PromptError(
                    f"prompt[{index}]: {block.mime_type!r} is not an image media type"
                )
            head = block.data[:4096]
            try:
                base64.b64decode(head[: len(head) // 4 * 4], validate=True)
            except (binascii.Error, ValueError):
                raise PromptError(f"prompt[{index}]: the image data is not base64") from None


__all__ = ["PromptError", "check_prompt", "decoded_size"]
