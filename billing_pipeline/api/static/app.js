// Billing dashboard: plain JS, no build step, no external resources. Data goes into the page through
// textContent and SVG attributes only (never innerHTML), so nothing from the API is ever parsed as markup.
// Every amount shown is the API's (exact value and published cents); this page computes no money. Numbers are
// written as billing_pipeline/formatting.py writes them: "1,234.56 USD", "190,575.68 GB-seconds" (half up to 4
// decimals), unit prices to 10 decimals ("0.0000166667 USD"), "+33.3 %"; bar heights alone use floats.
(function () {
  "use strict";

  var TOKEN_KEY = "billingToken";
  var SVG = "http://www.w3.org/2000/svg";
  var MISSING = "—";
  var state = { month: null, history: [], doc: null, latest: null, type: null, line: null };

  function $(id) { return document.getElementById(id); }

  function fragment(name) {
    var match = new RegExp("(?:^#|&)" + name + "=([^&]+)").exec(window.location.hash || "");
    return match ? decodeURIComponent(match[1]) : null;
  }

  // A token in the fragment (/#token=...) is moved to sessionStorage and removed from the address bar. The
  // fragment may also open a month and a drill-down: #month=2026-01&type=lambda&line=<type|service|usage|line|part>.
  function tokenFromFragment() {
    var value = fragment("token");
    state.month = fragment("month");
    state.type = fragment("type");
    state.line = fragment("line");
    state.keep = !!(state.type || state.line);
    if (value) { sessionStorage.setItem(TOKEN_KEY, value); }
    if (window.location.hash) { history.replaceState(null, "", window.location.pathname + window.location.search); }
  }

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  function api(path) {
    return fetch(path, { headers: { "Authorization": "Bearer " + token() }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          return response.json().catch(function () { return {}; }).then(function (body) {
            var error = new Error(body.detail || ("HTTP " + response.status));
            error.status = response.status;
            throw error;
          });
        }
        return response;
      });
  }

  function show(id, visible) { $(id).hidden = !visible; }

  function message(text, isError) {
    var el = $("message");
    el.textContent = text || "";
    el.className = "message" + (isError ? " error" : "");
    el.hidden = !text;
  }

  // ---- number format (as formatting.py): decimal strings rounded half up on their digits, never via a float

  function grouped(digits) { return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ","); }

  // text rounded half up (away from zero) to `places`, keeping at least `least` and at most `places` decimals
  function decimal(text, places, least) {
    var negative = text.charAt(0) === "-";
    var parts = text.replace(/^[-+]/, "").split(".");
    var fraction = (parts[1] || "") + new Array(places + 2).join("0");
    var n = BigInt(parts[0] + fraction.slice(0, places));
    if (fraction.charAt(places) >= "5") { n += BigInt(1); }
    var s = n.toString();
    while (s.length <= places) { s = "0" + s; }
    var whole = s.slice(0, s.length - places), frac = places ? s.slice(s.length - places) : "";
    while (frac.length > least && frac.charAt(frac.length - 1) === "0") { frac = frac.slice(0, -1); }
    var out = grouped(whole) + (frac ? "." + frac : "");
    return (negative && n !== BigInt(0) ? "-" : "") + out;
  }

  function fmt(money, currency) {
    if (!money) { return MISSING; }
    return decimal(money.rounded, 2, 2) + " " + currency;  // the published cents
  }

  function quantity(text, unit) {
    if (text == null) { return MISSING; }
    return decimal(text, 4, 0) + (unit ? " " + unit : "");
  }

  function unitPrice(text, currency) {
    if (text == null) { return MISSING; }
    return decimal(text, 10, 2) + " " + currency;
  }

  function percent(text, signed) {
    if (text == null) { return MISSING; }
    var out = decimal(text, 1, 1);
    // "+" on a positive value (formatting.percent), even when it rounds to 0.0
    return (signed && out.charAt(0) !== "-" && text.charAt(0) !== "-" && /[1-9]/.test(text) ? "+" : "") + out + " %";
  }

  function utc(stamp) { return stamp ? stamp.slice(0, 16).replace("T", " ") + " UTC" : MISSING; }

  function cell(row, text, cls) {
    var td = document.createElement("td");
    td.textContent = text == null ? "" : text;
    if (cls) { td.className = cls; }
    row.appendChild(td);
    return td;
  }

  function svg(name, attrs, parent, text) {
    var el = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (text != null) { el.textContent = text; }
    if (parent) { parent.appendChild(el); }
    return el;
  }

  function niceMax(value) {
    if (value <= 0) { return 1; }
    var power = Math.pow(10, Math.floor(Math.log10(value)));
    var steps = [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10];
    for (var i = 0; i < steps.length; i++) { if (steps[i] * power >= value) { return steps[i] * power; } }
    return 10 * power;
  }

  function hatchPattern(chart) {
    var defs = svg("defs", {}, chart);
    var pattern = svg("pattern", { id: "hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse",
      patternTransform: "rotate(45)" }, defs);
    svg("rect", { width: 6, height: 6, "class": "hatch-bg" }, pattern);
    svg("line", { x1: 0, y1: 0, x2: 0, y2: 6, "class": "hatch-line" }, pattern);
  }

  // y axis with four grid lines; returns the y of a value
  function axis(chart, W, H, left, right, top, bottom, max, currency) {
    var plotH = H - top - bottom;
    for (var g = 0; g <= 4; g++) {
      var y = top + plotH - plotH * g / 4;
      svg("line", { x1: left, x2: W - right, y1: y, y2: y, "class": g ? "grid" : "axis" }, chart);
      svg("text", { x: left - 8, y: y + 4, "text-anchor": "end" }, chart,
        decimal(String(+(max * g / 4).toFixed(4)), 2, 2));
    }
    svg("text", { x: 4, y: top - 2 }, chart, currency || "");
    return function (v) { return top + plotH - plotH * Math.max(0, v) / max; };
  }

  // ---- summary, parts, month to date

  var STATUS = {
    final: ["Final", "AWS has issued this month's invoice: these figures no longer change."],
    provisional: ["Provisional (month not final)",
      "AWS may still add or change lines until it issues the month's invoice: the figures can move."],
    estimated: ["Estimated (no AWS bill yet)", "No AWS bill for this month yet: the amount is the application's estimate."]
  };
  // a month before the bill's first delivery with no estimates of the application: the pipeline's month so far
  var FROM_USAGE = "No AWS bill for this month yet: the amount is the month so far, estimated from measured usage " +
    "at the unit costs of last month's bill.";

  function renderSummary(doc) {
    $("month-label").textContent = doc.month;
    $("total-cost").textContent = fmt(doc.total_cost, doc.currency);
    $("total-exact").textContent = doc.total_cost.exact + " " + doc.currency;
    var status = $("total-status");
    status.textContent = STATUS[doc.status][0];
    status.className = "badge " + doc.status;
    $("status-explained").textContent = doc.total_source === "month_to_date" ? FROM_USAGE : STATUS[doc.status][1];
    var published = doc.published || {};
    $("published").textContent = "Published " + utc(published.at) +
      (published.cur_delivery ? " from AWS bill delivery " + published.cur_delivery : " (estimates only)");
    $("estimated-cost").textContent = fmt(doc.estimated_cost, doc.currency);
    $("estimated-exact").textContent = doc.estimated_cost ? doc.estimated_cost.exact : "no estimates";
    $("variance-cost").textContent = fmt(doc.variance, doc.currency);
    $("variance-cost").className = "amount small" + (doc.flagged ? " flagged" : "");
    var pct = (doc.estimated_vs_actual || []).filter(function (r) { return r.resource_type === "total"; })[0];
    $("variance-exact").textContent = doc.variance
      ? doc.variance.exact + (pct && pct.variance_pct != null ? " (" + percent(pct.variance_pct, true) + ")" : "") : MISSING;
    $("flag-explained").textContent = doc.flagged
      ? "Flagged: the actual cost differs from the estimate by more than the variance threshold, or cost arrived that nothing estimated."
      : "Within the variance threshold.";
    Array.prototype.forEach.call($("parts").querySelectorAll("tr"), function (row) {
      var part = (doc.parts || {})[row.getAttribute("data-part")];
      row.querySelector("td").textContent = part ? fmt(part, doc.currency) : MISSING;
      row.querySelector("td").title = part ? part.exact : "";
    });
    var link = $("csv-link");
    link.href = "/billing.csv?month=" + encodeURIComponent(doc.month);
    link.setAttribute("download", doc.accountant_id + "_" + doc.month + ".csv");
    show("summary", true);
  }

  function renderMonthToDate(doc) {
    var mtd = doc.month_to_date;
    var box = $("mtd-chart");
    box.textContent = "";
    if (!mtd) { show("mtd-section", false); return; }
    var cur = mtd.currency;
    $("mtd-actual").textContent = fmt(mtd.actual_cost, cur);
    $("mtd-covered").textContent = "actual through " + utc(mtd.covered_through);
    $("mtd-estimated").textContent = fmt(mtd.estimated_cost, cur);
    $("mtd-as-of").textContent = "estimated from usage through " + utc(mtd.as_of);
    $("mtd-to-date").textContent = fmt(mtd.cost_to_date, cur);
    $("mtd-forecast").textContent = fmt(mtd.forecast_cost, cur) + " (interval " + fmt(mtd.forecast_low, cur) +
      " to " + fmt(mtd.forecast_high, cur) + ")";
    // one horizontal bar: actual (solid), estimated (hatched), the forecast and its interval
    var W = 1000, H = 70, left = 10, right = 10;
    var values = [mtd.actual_cost, mtd.cost_to_date, mtd.forecast_high].map(function (m) { return parseFloat(m.exact); });
    var max = niceMax(Math.max.apply(null, values));
    var x = function (v) { return left + (W - left - right) * Math.max(0, v) / max; };
    var chart = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "Month to date" });
    hatchPattern(chart);
    var a = parseFloat(mtd.actual_cost.exact), t = parseFloat(mtd.cost_to_date.exact);
    svg("rect", { x: left, y: 16, width: (x(a) - left).toFixed(1), height: 26, "class": "actual" }, chart);
    svg("rect", { x: x(a).toFixed(1), y: 16, width: Math.max(0, x(t) - x(a)).toFixed(1), height: 26,
      "class": "estimated-part" }, chart);
    var f = x(parseFloat(mtd.forecast_cost.exact));
    var lo = x(parseFloat(mtd.forecast_low.exact)), hi = x(parseFloat(mtd.forecast_high.exact));
    svg("line", { x1: lo.toFixed(1), x2: hi.toFixed(1), y1: 50, y2: 50, "class": "interval" }, chart);
    [lo, hi].forEach(function (v) { svg("line", { x1: v.toFixed(1), x2: v.toFixed(1), y1: 45, y2: 55, "class": "interval" }, chart); });
    svg("line", { x1: f.toFixed(1), x2: f.toFixed(1), y1: 8, y2: 58, "class": "forecast" }, chart);
    svg("text", { x: left, y: 12 }, chart, "actual through " + utc(mtd.covered_through));
    box.appendChild(chart);
    show("mtd-section", true);
  }

  // ---- trend across months (oldest first); the current month as actual + estimated and its forecast

  function renderTrend() {
    var months = state.history.slice().reverse();
    var box = $("trend");
    box.textContent = "";
    if (!months.length) { show("trend-section", false); return; }
    var latest = state.latest && state.latest.month_to_date ? state.latest : null;
    var currency = months[months.length - 1].currency;
    var W = 1000, H = 240, left = 56, right = 20, top = 16, bottom = 48;
    var max = 0;
    months.forEach(function (m) { max = Math.max(max, parseFloat(m.total_cost.exact)); });
    if (latest) {
      max = Math.max(max, parseFloat(latest.month_to_date.cost_to_date.exact),
        parseFloat(latest.month_to_date.forecast_high.exact));
    }
    max = niceMax(max);
    var chart = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "Cost per month" });
    hatchPattern(chart);
    var y = axis(chart, W, H, left, right, top, bottom, max, currency);
    var slot = (W - left - right) / months.length, barW = Math.min(70, slot * 0.5);
    months.forEach(function (m, i) {
      var cx = left + slot * i + slot / 2, x0 = (cx - barW / 2).toFixed(1);
      var group = svg("g", { "class": "month" + (m.flagged ? " flagged" : ""), "data-month": m.month }, chart);
      var mtd = latest && latest.month === m.month ? latest.month_to_date : null;
      var base = parseFloat((mtd ? mtd.actual_cost : m.total_cost).exact);
      svg("rect", { x: x0, y: y(base).toFixed(1), width: barW.toFixed(1), height: (y(0) - y(base)).toFixed(1),
        "class": m.status === "estimated" ? "estimated-part" : "actual" }, group);
      var label = m.month + ": " + fmt(m.total_cost, m.currency);
      if (mtd) {
        var upTo = parseFloat(mtd.cost_to_date.exact);
        svg("rect", { x: x0, y: y(upTo).toFixed(1), width: barW.toFixed(1), height: (y(base) - y(upTo)).toFixed(1),
          "class": "estimated-part" }, group);
        var lo = y(parseFloat(mtd.forecast_low.exact)), hi = y(parseFloat(mtd.forecast_high.exact));
        var f = y(parseFloat(mtd.forecast_cost.exact));
        svg("line", { x1: cx, x2: cx, y1: lo.toFixed(1), y2: hi.toFixed(1), "class": "interval" }, group);
        svg("line", { x1: cx - barW / 2 - 4, x2: cx + barW / 2 + 4, y1: f.toFixed(1), y2: f.toFixed(1), "class": "forecast" }, group);
        label = m.month + ": " + fmt(mtd.cost_to_date, mtd.currency) + " to date, forecast " +
          fmt(mtd.forecast_cost, mtd.currency);
      }
      svg("title", {}, group, label);
      svg("text", { x: cx, y: H - bottom + 17, "text-anchor": "middle" }, chart, m.month);
      svg("text", { x: cx, y: H - bottom + 33, "text-anchor": "middle", "class": m.flagged ? "pct flagged" : "pct" }, chart,
        (m.flagged ? "flagged · " : "") + m.status);
    });
    box.appendChild(chart);
    show("trend-section", true);
  }

  // ---- drill-down: resource type -> usage lines -> days

  function renderBreakdown(doc) {
    var body = $("breakdown").querySelector("tbody");
    body.textContent = "";
    var types = Object.keys(doc.usage_by_type);
    var max = 0;
    types.forEach(function (t) { max = Math.max(max, Math.abs(parseFloat(doc.usage_by_type[t].cost.exact))); });
    types.forEach(function (t) {
      var usage = doc.usage_by_type[t];
      var row = document.createElement("tr");
      row.setAttribute("data-type", t);
      if (state.type === t) { row.className = "selected"; }
      cell(row, t);
      cell(row, fmt(usage.cost, doc.currency), "num");
      cell(row, usage.cost.exact, "num mono");
      var bar = document.createElement("div");
      bar.className = "bar";
      bar.style.width = (max > 0 ? Math.abs(parseFloat(usage.cost.exact)) / max * 100 : 0).toFixed(1) + "%";
      cell(row, "").appendChild(bar);
      row.addEventListener("click", function () {
        state.type = state.type === t ? null : t;
        state.line = null;
        renderDrill(doc);
      });
      body.appendChild(row);
    });
    show("breakdown-section", types.length > 0);
  }

  function lineKey(l) { return [l.resource_type, l.service, l.usage_type, l.line_item_type, l.part].join("|"); }

  function renderLines(doc) {
    var body = $("lines").querySelector("tbody");
    body.textContent = "";
    var lines = (doc.usage_lines || []).filter(function (l) { return !state.type || l.resource_type === state.type; });
    $("lines-scope").textContent = state.type ? "of " + state.type : "(all types)";
    lines.forEach(function (l) {
      var row = document.createElement("tr");
      row.setAttribute("data-line", lineKey(l));
      if (state.line === lineKey(l)) { row.className = "selected"; }
      cell(row, l.service);
      cell(row, l.usage_type || l.line_item_type);
      cell(row, l.part, "part " + l.part);
      cell(row, quantity(l.quantity, l.unit), "num").title = l.quantity == null ? "" : l.quantity;
      cell(row, unitPrice(l.unit_cost, l.currency), "num").title = l.unit_cost == null ? "" : l.unit_cost;
      cell(row, fmt(l.cost, l.currency), "num").title = l.cost.exact;
      row.addEventListener("click", function () {
        state.line = state.line === lineKey(l) ? null : lineKey(l);
        renderDrill(doc);
      });
      body.appendChild(row);
    });
    show("lines-section", lines.length > 0);
  }

  function renderDays(doc) {
    var line = state.line && (doc.usage_lines || []).filter(function (l) { return lineKey(l) === state.line; })[0];
    var days = line ? line.days : ((doc.daily || {})[state.type || "total"] || []);
    $("days-scope").textContent = line ? line.service + " " + (line.usage_type || line.line_item_type) + " (" + line.part + ")"
      : (state.type || "all types");
    var body = $("days").querySelector("tbody");
    body.textContent = "";
    var box = $("days-chart");
    box.textContent = "";
    if (!days.length) { show("days-section", false); return; }
    days.forEach(function (d) {
      var row = document.createElement("tr");
      row.setAttribute("data-date", d.date);
      cell(row, d.date);
      cell(row, line ? quantity(d.quantity, line.unit) : "", "num");
      cell(row, fmt(d.cost, doc.currency), "num").title = d.cost.exact;
      body.appendChild(row);
    });
    var W = 1000, H = 200, left = 56, right = 10, top = 16, bottom = 28;
    var max = 0;
    days.forEach(function (d) { max = Math.max(max, parseFloat(d.cost.exact)); });
    max = niceMax(max);
    var chart = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "Cost by day" });
    var y = axis(chart, W, H, left, right, top, bottom, max, doc.currency);
    var slot = (W - left - right) / days.length;
    days.forEach(function (d, i) {
      var v = parseFloat(d.cost.exact);
      var rect = svg("rect", { x: (left + slot * i + 1).toFixed(1), y: y(v).toFixed(1), width: Math.max(1, slot - 2).toFixed(1),
        height: Math.max(0.5, y(0) - y(v)).toFixed(1), "class": "day" }, chart);
      svg("title", {}, rect, d.date + ": " + fmt(d.cost, doc.currency));
      if (i === 0 || i === days.length - 1 || days.length <= 10) {
        svg("text", { x: left + slot * i + slot / 2, y: H - bottom + 16, "text-anchor": "middle" }, chart, d.date.slice(5));
      }
    });
    box.appendChild(chart);
    show("days-section", true);
  }

  function renderDrill(doc) {
    renderBreakdown(doc);
    renderLines(doc);
    renderDays(doc);
  }

  function renderChart(doc) {
    var rows = (doc.estimated_vs_actual || []).filter(function (r) { return r.resource_type !== "total"; });
    var box = $("chart");
    box.textContent = "";
    if (!rows.length) { show("chart-section", false); return; }
    var W = 640, H = 260, left = 56, right = 20, top = 16, bottom = 44;
    var max = 0;
    rows.forEach(function (r) {
      max = Math.max(max, parseFloat(r.estimated_cost.exact), parseFloat(r.actual_cost.exact));
    });
    max = niceMax(max);
    var chart = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "Estimated vs actual cost by resource type" });
    var y = axis(chart, W, H, left, right, top, bottom, max, doc.currency);
    var slot = (W - left - right) / rows.length, barW = Math.min(60, slot * 0.32);
    rows.forEach(function (r, i) {
      var cx = left + slot * i + slot / 2;
      [["estimated", r.estimated_cost, cx - barW - 2], ["actual", r.actual_cost, cx + 2]].forEach(function (b) {
        var v = parseFloat(b[1].exact);
        var rect = svg("rect", { x: b[2].toFixed(1), y: y(v).toFixed(1), width: barW.toFixed(1),
          height: Math.max(y(0) - y(v), 0.5).toFixed(1), "class": b[0] + (b[0] === "actual" && r.flagged ? " flagged" : "") }, chart);
        svg("title", {}, rect, r.resource_type + " " + b[0] + ": " + fmt(b[1], doc.currency));
      });
      svg("text", { x: cx, y: H - bottom + 17, "text-anchor": "middle" }, chart, r.resource_type);
      svg("text", { x: cx, y: H - bottom + 33, "text-anchor": "middle", "class": r.flagged ? "pct flagged" : "pct" }, chart,
        r.variance_pct != null ? percent(r.variance_pct, true) : "not estimated");
    });
    box.appendChild(chart);
    show("chart-section", true);
  }

  function option(select, value, selected) {
    var el = document.createElement("option");
    el.value = value;
    el.textContent = value;
    el.selected = selected;
    select.appendChild(el);
  }

  function renderHistory() {
    var body = $("history").querySelector("tbody");
    body.textContent = "";
    ["month-select", "range-from", "range-to"].forEach(function (id) { $(id).textContent = ""; });
    var months = state.history;
    months.forEach(function (m) {
      var row = document.createElement("tr");
      row.setAttribute("data-month", m.month);
      row.className = [m.month === state.month ? "selected" : "", m.flagged ? "flagged" : ""].join(" ").trim();
      cell(row, m.month);
      cell(row, m.status + (m.flagged ? " · flagged" : ""));
      cell(row, fmt(m.total_cost, m.currency), "num");
      cell(row, fmt(m.estimated_cost, m.currency), "num");
      cell(row, fmt(m.variance, m.currency), "num");
      row.addEventListener("click", function () { load(m.month); });
      body.appendChild(row);
      option($("month-select"), m.month, m.month === state.month);
    });
    months.slice().reverse().forEach(function (m, i) {
      option($("range-from"), m.month, i === 0);
      option($("range-to"), m.month, i === months.length - 1);
    });
    updateRangeLink();
    show("history-section", months.length > 0);
  }

  function updateRangeLink() {
    var from = $("range-from").value, to = $("range-to").value;
    if (from > to) { var swap = from; from = to; to = swap; }
    var link = $("csv-range-link");
    link.href = "/billing.csv?from=" + encodeURIComponent(from) + "&to=" + encodeURIComponent(to);
    var who = state.doc ? state.doc.accountant_id : "";
    link.setAttribute("download", who + "_" + (from === to ? from : from + "_" + to) + ".csv");
  }

  function signedIn(accountant) {
    $("who").textContent = accountant || "";
    $("token-form").hidden = !!accountant;
    $("sign-out").hidden = !accountant;
  }

  var SECTIONS = ["summary", "mtd-section", "trend-section", "breakdown-section", "lines-section", "days-section",
    "chart-section", "history-section"];

  function fail(error) {
    if (error.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      signedIn(null);
      SECTIONS.forEach(function (id) { show(id, false); });
    }
    message(error.message, true);
  }

  function getDoc(month) {
    return api("/billing?month=" + encodeURIComponent(month)).then(function (r) { return r.json(); });
  }

  function load(month) {
    if (!token()) { signedIn(null); message("Enter your access token to see your billing."); return; }
    message("Loading…");
    api("/billing/history").then(function (r) { return r.json(); }).then(function (h) {
      state.history = h.months;
      signedIn(h.accountant_id);
      if (!h.months.length) { throw Object.assign(new Error("No billing data yet."), { status: 404 }); }
      var chosen = month || state.month || h.months[0].month;
      var newest = h.months[0];
      // the trend shows the newest month's month to date: its statement, fetched too when another month is shown
      var requests = [getDoc(chosen)];
      if (chosen !== newest.month && !newest.is_final) { requests.push(getDoc(newest.month)); }
      return Promise.all(requests);
    }).then(function (docs) {
      var doc = docs[0];
      if (doc.month !== state.month && !state.keep) { state.type = null; state.line = null; }
      state.keep = false;
      state.month = doc.month;
      state.doc = doc;
      state.latest = docs[1] || (doc.month === state.history[0].month ? doc : null);
      renderSummary(doc);
      renderMonthToDate(doc);
      renderTrend();
      renderDrill(doc);
      renderChart(doc);
      renderHistory();
      message("");
      document.body.setAttribute("data-loaded", doc.month);
    }).catch(fail);
  }

  function downloadCsv(event) {
    event.preventDefault();
    var link = event.currentTarget;
    api(link.getAttribute("href")).then(function (r) { return r.blob(); }).then(function (blob) {
      var url = URL.createObjectURL(blob);
      var a = document.createElement("a");
      a.href = url;
      a.download = link.getAttribute("download");
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
    }).catch(fail);
  }

  document.addEventListener("DOMContentLoaded", function () {
    tokenFromFragment();
    $("token-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var value = $("token-input").value.trim();
      if (!value) { return; }
      sessionStorage.setItem(TOKEN_KEY, value);
      $("token-input").value = "";
      state.month = null;
      load();
    });
    $("sign-out").addEventListener("click", function () {
      sessionStorage.removeItem(TOKEN_KEY);
      window.location.reload();
    });
    $("month-select").addEventListener("change", function (event) { load(event.target.value); });
    $("range-from").addEventListener("change", updateRangeLink);
    $("range-to").addEventListener("change", updateRangeLink);
    $("csv-link").addEventListener("click", downloadCsv);
    $("csv-range-link").addEventListener("click", downloadCsv);
    load();
  });
})();
