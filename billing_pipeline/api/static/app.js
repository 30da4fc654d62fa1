// Billing dashboard: plain JS, no build step, no external resources. Data goes into the page through
// textContent and SVG attributes only (never innerHTML), so nothing from the API is ever parsed as markup.
(function () {
  "use strict";

  var TOKEN_KEY = "billingToken";
  var SVG = "http://www.w3.org/2000/svg";
  var state = { month: null, history: [] };

  function $(id) { return document.getElementById(id); }

  // A token in the fragment (/#token=...) is moved to sessionStorage and removed from the address bar.
  function tokenFromFragment() {
    var match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash || "");
    if (match) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
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

  function fmt(money, currency) {
    if (!money) { return "–"; }
    var rounded = money.rounded;
    var negative = rounded.charAt(0) === "-";
    var digits = negative ? rounded.slice(1) : rounded;
    var parts = digits.split(".");
    parts[0] = parts[0].replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    var text = parts.join(".");
    text = currency === "USD" ? "$" + text : text + " " + currency;
    return negative ? "−" + text : text;
  }

  function cell(row, text, cls) {
    var td = document.createElement("td");
    td.textContent = text == null ? "" : text;
    if (cls) { td.className = cls; }
    row.appendChild(td);
    return td;
  }

  function trimZeros(text) {
    if (text == null) { return ""; }
    return text.indexOf(".") < 0 ? text : text.replace(/0+$/, "").replace(/\.$/, "");
  }

  // A quantity for reading: two decimals, thousands separators (the exact value is in the cell's title).
  function number(text) {
    if (text == null) { return "–"; }
    var value = parseFloat(text);
    return value.toLocaleString("en-US", { minimumFractionDigits: 0, maximumFractionDigits: 2 });
  }

  function renderSummary(doc) {
    $("month-label").textContent = doc.month;
    $("total-cost").textContent = fmt(doc.total_cost, doc.currency);
    $("total-exact").textContent = doc.total_cost.exact + " " + doc.currency;
    var status = $("total-status");
    status.textContent = doc.status === "final" ? "Final" :
      doc.status === "provisional" ? "Provisional (month not final)" : "Estimated (no AWS bill yet)";
    status.className = "badge " + doc.status;
    var published = doc.published || {};
    $("published").textContent = "Published " + (published.at || "?").replace("T", " ").replace("Z", " UTC") +
      (published.cur_delivery ? " from AWS bill delivery " + published.cur_delivery : " (estimates only)");
    $("estimated-cost").textContent = fmt(doc.estimated_cost, doc.currency);
    $("estimated-exact").textContent = doc.estimated_cost ? doc.estimated_cost.exact : "no estimates";
    $("variance-cost").textContent = fmt(doc.variance, doc.currency);
    var pct = (doc.estimated_vs_actual || []).filter(function (r) { return r.resource_type === "total"; })[0];
    $("variance-exact").textContent = doc.variance
      ? doc.variance.exact + (pct && pct.variance_pct != null ? " (" + pct.variance_pct + " %)" : "") : "–";
    var link = $("csv-link");
    link.href = "/billing.csv?month=" + encodeURIComponent(doc.month);
    link.setAttribute("download", "billing-" + doc.month + ".csv");
    show("summary", true);
  }

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
      cell(row, t);
      var ops = Object.keys(usage.operations || {});
      var q = cell(row, "", "num");
      if (usage.quantity != null) {
        q.textContent = number(usage.quantity);
        q.title = usage.quantity;
      } else if (ops.length) {
        ops.forEach(function (o) {
          var line = document.createElement("span");
          line.className = "ops";
          line.textContent = number(usage.operations[o].quantity) + " " + o +
            (usage.operations[o].unit_cost != null ? " @ " + trimZeros(usage.operations[o].unit_cost) : "");
          line.title = usage.operations[o].quantity;
          q.appendChild(line);
        });
      } else {
        q.textContent = "–";
      }
      cell(row, usage.unit || "");
      cell(row, usage.unit_cost != null ? trimZeros(usage.unit_cost) : "–", "num");
      cell(row, fmt(usage.cost, doc.currency), "num");
      cell(row, usage.cost.exact, "num mono");
      var bar = document.createElement("div");
      bar.className = "bar";
      bar.style.width = (max > 0 ? Math.abs(parseFloat(usage.cost.exact)) / max * 100 : 0).toFixed(1) + "%";
      cell(row, "").appendChild(bar);
      body.appendChild(row);
    });
    show("breakdown-section", types.length > 0);
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

  function renderChart(doc) {
    var rows = (doc.estimated_vs_actual || []).filter(function (r) { return r.resource_type !== "total"; });
    var box = $("chart");
    box.textContent = "";
    if (!rows.length) { show("chart-section", false); return; }
    var W = 640, H = 260, left = 56, right = 20, top = 12, bottom = 44;
    var max = 0;
    rows.forEach(function (r) {
      max = Math.max(max, parseFloat(r.estimated_cost.exact), parseFloat(r.actual_cost.exact));
    });
    max = niceMax(max);
    var chart = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "Estimated vs actual cost by resource type" });
    var plotH = H - top - bottom, plotW = W - left - right;
    for (var g = 0; g <= 4; g++) {
      var y = top + plotH - plotH * g / 4;
      svg("line", { x1: left, x2: W - right, y1: y, y2: y, "class": g ? "grid" : "axis" }, chart);
      svg("text", { x: left - 8, y: y + 4, "text-anchor": "end" }, chart, trimZeros((max * g / 4).toFixed(4)));
    }
    var slot = plotW / rows.length, barW = Math.min(60, slot * 0.32);
    rows.forEach(function (r, i) {
      var cx = left + slot * i + slot / 2;
      [["estimated", r.estimated_cost, cx - barW - 2], ["actual", r.actual_cost, cx + 2]].forEach(function (b) {
        var v = Math.max(0, parseFloat(b[1].exact));
        var h = plotH * v / max;
        var rect = svg("rect", { x: b[2].toFixed(1), y: (top + plotH - h).toFixed(1), width: barW.toFixed(1),
          height: Math.max(h, 0.5).toFixed(1), "class": b[0] + (b[0] === "actual" && r.flagged ? " flagged" : "") }, chart);
        svg("title", {}, rect, r.resource_type + " " + b[0] + ": " + b[1].exact);
      });
      svg("text", { x: cx, y: H - bottom + 17, "text-anchor": "middle" }, chart, r.resource_type);
      svg("text", { x: cx, y: H - bottom + 33, "text-anchor": "middle", "class": r.flagged ? "pct flagged" : "pct" }, chart,
        r.variance_pct != null ? (r.variance_pct.charAt(0) === "-" ? "" : "+") + parseFloat(r.variance_pct).toFixed(1) + " %" : "not estimated");
    });
    box.appendChild(chart);
    show("chart-section", true);
  }

  function renderHistory() {
    var body = $("history").querySelector("tbody");
    body.textContent = "";
    var select = $("month-select");
    select.textContent = "";
    state.history.forEach(function (m) {
      var row = document.createElement("tr");
      row.setAttribute("data-month", m.month);
      if (m.month === state.month) { row.className = "selected"; }
      cell(row, m.month);
      cell(row, m.status);
      cell(row, fmt(m.total_cost, m.currency), "num");
      cell(row, fmt(m.estimated_cost, m.currency), "num");
      cell(row, fmt(m.variance, m.currency), "num");
      row.addEventListener("click", function () { load(m.month); });
      body.appendChild(row);
      var option = document.createElement("option");
      option.value = m.month;
      option.textContent = m.month;
      option.selected = m.month === state.month;
      select.appendChild(option);
    });
    show("history-section", state.history.length > 0);
  }

  function signedIn(accountant) {
    $("who").textContent = accountant || "";
    $("token-form").hidden = !!accountant;
    $("sign-out").hidden = !accountant;
  }

  function fail(error) {
    if (error.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      signedIn(null);
      ["summary", "breakdown-section", "chart-section", "history-section"].forEach(function (id) { show(id, false); });
    }
    message(error.message, true);
  }

  function load(month) {
    if (!token()) { signedIn(null); message("Enter your access token to see your billing."); return; }
    message("Loading…");
    var historyRequest = api("/billing/history").then(function (r) { return r.json(); });
    historyRequest.then(function (h) {
      state.history = h.months;
      signedIn(h.accountant_id);
      if (!h.months.length) { throw Object.assign(new Error("No billing data yet."), { status: 404 }); }
      var chosen = month || state.month || h.months[0].month;
      return api("/billing?month=" + encodeURIComponent(chosen)).then(function (r) { return r.json(); });
    }).then(function (doc) {
      state.month = doc.month;
      renderSummary(doc);
      renderBreakdown(doc);
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
    $("csv-link").addEventListener("click", downloadCsv);
    load();
  });
})();
