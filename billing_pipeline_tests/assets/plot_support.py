"""The PNG inside a plot's markdown metadata, checked whole and of the fixed size."""

from __future__ import annotations

import base64
import re
import struct

from billing_pipeline.plots import DPI, HEIGHT_IN, WIDTH_IN

PNG_IN_MARKDOWN = re.compile(r"^\*\*(?P<title>[^*]+)\*\*\n\n!\[(?P=title)\]\(data:image/png;base64,(?P<data>[A-Za-z0-9+/=]+)\)$")


def png_of(markdown: str) -> bytes:
    """The PNG of a plot's markdown; asserts it is a whole PNG of the fixed size, a few tens of KB at most."""
    match = PNG_IN_MARKDOWN.match(markdown)
    assert match, markdown[:200]
    png = base64.b64decode(match["data"], validate=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR" and png.endswith(b"IEND\xaeB`\x82")
    assert struct.unpack(">II", png[16:24]) == (round(WIDTH_IN * DPI), round(HEIGHT_IN * DPI)) == (512, 240)
    assert len(png) < 40_000
    return png
