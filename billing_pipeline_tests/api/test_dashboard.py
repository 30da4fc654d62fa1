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
from decimal import ROUND_HALF_UP
from decimal import Decimal as D
from pathlib import Path

import httpx
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


def money_text(cents: D, currency: str = "USD") -> str:
    """formatting.py's money: `1,234.56 USD`."""
    return f"{cents:,.2f} {currency}"


def trimmed(value: D, step: str, least: int) -> str:
    rounded = value.quantize(D(step), rounding=ROUND_HALF_UP)
    text = f"{rounded:,f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0")
    fraction += "0" * max(0, least - len(fraction))
    return whole + ("." + fraction if fraction else "")


def quantity_text(value: str, unit: str) -> str:
    """formatting.py's quantity: half up to 4 decimals, trailing zeros dropped: `122,448.4805 GB-seconds`."""
    return f"{trimmed(D(value), '0.0001', 0)} {unit}"


def unit_price_text(value: str, currency: str = "USD") -> str:
    """formatting.py's unit price: half up to 10 decimals, at least 2: `0.0000166667 USD`."""
    return f"{trimmed(D(value), '0.0000000001', 2)} {currency}"


def statement(server, built, accountant, month="2026-01"):
    response = httpx.get(f"{server}/billing", params={"month": month},
                         headers={"Authorization": f"Bearer {built.tokens[accountant]}"}, timeout=20)
    assert response.status_code == 200, response.text
    return response.json()


def test_dashboard_renders_the_tenants_own_numbers_only(server, built, tmp_path):
    url = f"{server}/#token={built.tokens[A]}"
    result = chromium(tmp_path / "profile-dom", "--dump-dom", url)
    dom = result.stdout
    (tmp_path / "dashboard.html").write_text(dom)
    assert 'data-loaded="2026-01"' in dom, result.stderr[-2000:]
    total = built.total(JAN, A)
    cents = built.cents(JAN)[A]
    assert f'<span id="who" class="who">{A}</span>' in dom
    assert f'<span id="total-exact">{total:f} USD</span>' in dom
    assert f'<div id="total-cost" class="amount">{money_text(cents)}</div>' in dom
    # when the figures were published, and from which CUR delivery
    pointer = json.loads((built.published / "current" / "2026-01.json").read_text())
    at = pointer["published_at"][:16].replace("T", " ") + " UTC"
    assert f'<div id="published" class="exact">Published {at} from AWS bill delivery {pointer["delivery_id"]}</div>' in dom
    # breakdown rows, the history (both months) and the CSV links
    for rtype in {t for (a, t) in built.months[JAN].expected_actuals if a == A}:
        assert f'<tr data-type="{rtype}">' in dom
        assert f"{built.months[JAN].expected_actuals[(A, rtype)]:f}" in dom
    assert '<tr data-month="2025-12"' in dom and '<tr data-month="2026-01" class="selected' in dom
    assert 'href="/billing.csv?month=2026-01" download="acct-0001_2026-01.csv"' in dom
    assert 'href="/billing.csv?from=2025-12&amp;to=2026-01" download="acct-0001_2025-12_2026-01.csv"' in dom
    # nothing of the other tenants, and the token is gone from the address bar and the page
    for other in (B, C):
        assert other not in dom
        assert f"{built.total(JAN, other):f}" not in dom and f"{built.total(DEC, other):f}" not in dom
    assert built.tokens[A] not in dom


def test_dashboard_shows_parts_lines_in_units_and_explanations(server, built, tmp_path):
    doc = statement(server, built, A)
    dom = chromium(tmp_path / "profile-parts", "--dump-dom", f"{server}/#token={built.tokens[A]}").stdout
    assert 'data-loaded="2026-01"' in dom
    # the status and what it means; flagged or not, and what that means
    assert '<div id="total-status" class="badge provisional">Provisional (month not final)</div>' in dom
    assert ('<div id="status-explained" class="explain">AWS may still add or change lines until it issues the '
            "month's invoice: the figures can move.</div>") in dom
    flag = ("Flagged: the actual cost differs from the estimate by more than the variance threshold, or cost arrived "
            "that nothing estimated." if doc["flagged"] else "Within the variance threshold.")
    assert f'<div id="flag-explained" class="explain">{flag}</div>' in dom
    assert "<dt>Provisional</dt>" in dom and "<dt>Flagged</dt>" in dom
    # the variance and its percentage (formatting.percent: half up to one decimal, signed)
    pct = D(next(r for r in doc["estimated_vs_actual"] if r["resource_type"] == "total")["variance_pct"])
    pct_text = ("+" if pct > 0 else "") + f"{pct.quantize(D('0.1'), rounding=ROUND_HALF_UP):,f} %"
    assert (f'<span id="variance-exact">{doc["variance"]["exact"]} ({pct_text})</span>') in dom
    assert f'>{money_text(D(doc["variance"]["rounded"]))}</div>' in dom
    # direct, shared, proportional
    for part, label in (("direct", "Direct"), ("shared", "Shared"), ("proportional", "Proportional")):
        m = doc["parts"][part]
        assert (f'<tr data-part="{part}"><th>{label}</th><td class="num" title="{m["exact"]}">'
                f'{money_text(D(m["rounded"]))}</td></tr>') in dom
    # every usage line in its unit at the bill's unit cost
    for line in doc["usage_lines"]:
        key = "|".join(line[k] or "" for k in
                       ("resource_type", "service", "usage_type", "line_item_type", "part"))
        row = (f'<td class="num" title="{line["quantity"]}">{quantity_text(line["quantity"], line["unit"])}</td>'
               f'<td class="num" title="{line["unit_cost"]}">{unit_price_text(line["unit_cost"])}</td>'
               f'<td class="num" title="{line["cost"]["exact"]}">{money_text(D(line["cost"]["rounded"]))}</td>')
        assert f'<tr data-line="{key}">' in dom
        assert row in dom, row
    lambda_direct = [x for x in doc["usage_lines"] if x["usage_type"] == "USE1-Lambda-GB-Second" and x["part"] == "direct"]
    assert lambda_direct and all(unit_price_text(x["unit_cost"]) == "0.0000166667 USD" for x in lambda_direct)
    assert "GB-seconds</td>" in dom and "LambdaCompute" not in dom and ">-<" not in dom
    # the days of the whole month
    for day in doc["daily"]["total"]:
        assert (f'<tr data-date="{day["date"]}"><td>{day["date"]}</td><td class="num"></td><td class="num" '
                f'title="{day["cost"]["exact"]}">{money_text(D(day["cost"]["rounded"]))}</td></tr>') in dom
    # the trend: one bar group per month, flagged months marked
    history = {m["month"]: m for m in httpx.get(f"{server}/billing/history", headers={
        "Authorization": f"Bearer {built.tokens[A]}"}).json()["months"]}
    for month, m in history.items():
        assert f'<g class="month{" flagged" if m["flagged"] else ""}" data-month="{month}">' in dom


def test_dashboard_drills_down_to_a_usage_line_by_day(server, built, tmp_path):
    doc = statement(server, built, A)
    line = next(x for x in doc["usage_lines"] if x["usage_type"] == "USE1-Lambda-GB-Second" and x["part"] == "direct")
    key = "lambda|AWSLambda|USE1-Lambda-GB-Second|Usage|direct"
    url = f"{server}/#token={built.tokens[A]}&type=lambda&line={key}"
    dom = chromium(tmp_path / "profile-drill", "--dump-dom", url).stdout
    assert '<span id="lines-scope">of lambda</span>' in dom
    assert '<tr data-type="lambda" class="selected">' in dom and f'<tr data-line="{key}" class="selected">' in dom
    assert "<tr data-line=\"s3|" not in dom  # only the type's lines
    assert '<span id="days-scope">AWSLambda USE1-Lambda-GB-Second (direct)</span>' in dom
    assert len(line["days"]) > 20
    for day in line["days"]:
        assert (f'<tr data-date="{day["date"]}"><td>{day["date"]}</td><td class="num">'
                f'{quantity_text(day["quantity"], "GB-seconds")}</td><td class="num" title="{day["cost"]["exact"]}">'
                f'{money_text(D(day["cost"]["rounded"]))}</td></tr>') in dom
    assert sum(d["cost"]["cents"] for d in line["days"]) == line["cost"]["cents"]


def test_dashboard_without_a_token_asks_for_one(server, tmp_path):
    dom = chromium(tmp_path / "profile-none", "--dump-dom", f"{server}/").stdout
    assert "Enter your access token" in dom
    assert '<section id="summary" class="cards" hidden="">' in dom


def test_dashboard_with_a_bad_token_shows_the_error(server, tmp_path):
    dom = chromium(tmp_path / "profile-bad", "--dump-dom", f"{server}/#token=bpt_wrong").stdout
    assert "Invalid or revoked token." in dom
    assert "acct-" not in dom


def test_dashboard_screenshot_is_drawn(server, built, tmp_path):
    shot = tmp_path / "dashboard.png"  # kept in the test's tmp dir for looking at
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
