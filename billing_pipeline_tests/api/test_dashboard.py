"""The dashboard in real headless Chromium against the API served on 127.0.0.1.

The token travels in the URL fragment (`/#token=...`, never sent to the server); the page moves it to
sessionStorage and calls the API with an Authorization header. `--dump-dom` shows what the page rendered after
its requests; `--screenshot` shows it is drawn (size and enough distinct colours, decoded with zlib below).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
JAN, DEC = dt.date(2026, 1, 1), dt.date(2025, 12, 1)
A, B, C = "acct-0001", "acct-0002", "acct-0003"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"headless Chromium not installed at {CHROMIUM}")


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args],
        capture_output=True, text=True, timeout=90)


def png_pixels(data: bytes) -> tuple[int, int, set[tuple[int, ...]]]:
    """Width, height and distinct colours of an 8-bit, non-interlaced RGB/RGBA PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color_type, _c, _f, interlace = header
    assert depth == 8 and color_type in (2, 6) and interlace == 0, header
    channels = 3 if color_type == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = np.zeros(stride, dtype=np.int64)
    image = np.empty((height, stride), dtype=np.uint8)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=start + 1).astype(np.int64)
        if kind == 1:  # Sub: a running sum per channel
            line = np.cumsum(line.reshape(width, channels), axis=0).reshape(-1) % 256
        elif kind == 2:  # Up
            line = (line + previous) % 256
        elif kind in (3, 4):  # Average, Paeth: sequential along the row
            out, up = line.tolist(), previous.tolist()
            for i in range(stride):
                left = out[i - channels] if i >= channels else 0
                if kind == 3:
                    out[i] = (out[i] + ((left + up[i]) >> 1)) & 0xFF
                else:
                    upper_left = up[i - channels] if i >= channels else 0
                    p = left + up[i] - upper_left
                    pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - upper_left)
                    out[i] = (out[i] + (left if pa <= pb and pa <= pc else up[i] if pb <= pc else upper_left)) & 0xFF
            line = np.array(out, dtype=np.int64)
        image[y] = line
        previous = line
    pixels = image.reshape(height, width, channels)[:, :, :3].reshape(-1, 3)
    colours = {tuple(int(v) for v in row) for row in np.unique(pixels, axis=0)}
    return width, height, colours


def test_dashboard_renders_the_tenants_own_numbers_only(server, built, tmp_path):
    url = f"{server}/#token={built.tokens[A]}"
    result = chromium(tmp_path / "profile-dom", "--dump-dom", url)
    dom = result.stdout
    assert 'data-loaded="2026-01"' in dom, result.stderr[-2000:]
    total = built.total(JAN, A)
    cents = built.cents(JAN)[A]
    assert f'<span id="who" class="who">{A}</span>' in dom
    assert f'<span id="total-exact">{total:f} USD</span>' in dom
    assert f'<div id="total-cost" class="amount">${cents:,.2f}</div>' in dom
    # when the figures were published, and from which CUR delivery
    pointer = json.loads((built.published / "current" / "2026-01.json").read_text())
    at = pointer["published_at"].replace("T", " ").replace("Z", " UTC")
    assert f'<div id="published" class="exact">Published {at} from AWS bill delivery {pointer["delivery_id"]}</div>' in dom
    # breakdown rows, the chart, the history (both months) and the CSV link
    for rtype in {t for (a, t) in built.months[JAN].expected_actuals if a == A}:
        assert f'<tr data-type="{rtype}">' in dom
        assert f"{built.months[JAN].expected_actuals[(A, rtype)]:f}" in dom
    assert dom.count("<rect ") == 2 * len({t for (a, t) in built.months[JAN].expected_actuals if a == A})
    assert '<tr data-month="2025-12">' in dom and '<tr data-month="2026-01" class="selected">' in dom
    assert 'href="/billing.csv?month=2026-01"' in dom
    # nothing of the other tenants, and the token is gone from the address bar and the page
    for other in (B, C):
        assert other not in dom
        assert f"{built.total(JAN, other):f}" not in dom and f"{built.total(DEC, other):f}" not in dom
    assert built.tokens[A] not in dom


def test_dashboard_without_a_token_asks_for_one(server, tmp_path):
    dom = chromium(tmp_path / "profile-none", "--dump-dom", f"{server}/").stdout
    assert "Enter your access token" in dom
    assert '<section id="summary" class="cards" hidden="">' in dom


def test_dashboard_with_a_bad_token_shows_the_error(server, tmp_path):
    dom = chromium(tmp_path / "profile-bad", "--dump-dom", f"{server}/#token=bpt_wrong").stdout
    assert "Invalid or revoked token." in dom
    assert "acct-" not in dom


def test_dashboard_screenshot_is_drawn(server, built, tmp_path):
    shot = tmp_path / "dashboard.png"
    result = chromium(tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,900",
                      "--hide-scrollbars", f"{server}/#token={built.tokens[B]}")
    assert shot.exists(), result.stderr[-2000:]
    keep = os.environ.get("BILLING_API_SCREENSHOT")  # set it to keep a copy for looking at
    if keep:
        Path(keep).write_bytes(shot.read_bytes())
    width, height, colours = png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 900)
    # a blank or error page has a handful of colours; the dashboard has text, cards, bars and a chart
    assert len(colours) > 50, len(colours)
    assert (0x13, 0x29, 0x3D) in colours  # the top bar
    assert (0xE0, 0x7A, 0x1F) in colours  # the chart's "actual" bars


def test_api_docs_render_offline_under_the_policy(server, tmp_path):
    """/api/docs is Swagger UI from the app itself (swagger-ui-bundle): it renders every endpoint with the
    Content-Security-Policy on and nothing reachable outside 127.0.0.1."""
    dom = chromium(tmp_path / "profile-docs", "--dump-dom", f"{server}/api/docs").stdout
    for path in ("/billing", "/billing/history", "/billing.csv", "/admin/months", "/admin/statements",
                 "/admin/billing"):
        assert f'data-path="{path}"' in dom, dom[-2000:]
    assert "Unable to render" not in dom
