/* KTRDR live pages: one poller per live element, and the charts those polls feed.
 *
 * An element with `data-poll-url` is re-fetched every `data-poll-seconds` and swapped (outerHTML,
 * through htmx, so its out-of-band parts append table rows). The poll sends the element's
 * `data-etag` back as If-None-Match: 304 means nothing changed, and the poller waits longer each
 * time (up to 5× the interval) until something does. A hidden tab does not poll; it polls at once
 * when shown again. A fragment without `data-poll-url` (an ended operation) stops its poller.
 * `data-poll-now` asks for the next poll at once (the page is behind by more than one answer).
 */
(function () {
  "use strict";

  const MAX_SLOWDOWN = 5;
  const MAX_ERROR_WAIT = 30;
  const pollers = new Map(); // element id -> {timer, idle, errors, busy}

  function stateOf(id) {
    let state = pollers.get(id);
    if (!state) {
      state = { timer: null, idle: 0, errors: 0, busy: false };
      pollers.set(id, state);
    }
    return state;
  }

  function schedule(id) {
    const el = document.getElementById(id);
    const state = stateOf(id);
    clearTimeout(state.timer);
    state.timer = null;
    if (!el || !el.dataset.pollUrl) {
      pollers.delete(id); // terminal fragment: polling ends here
      return;
    }
    const base = Math.max(parseFloat(el.dataset.pollSeconds || "1") || 1, 0.2);
    let wait = base * Math.min(Math.pow(2, state.idle), MAX_SLOWDOWN);
    if (state.errors) wait = Math.min(base * Math.pow(2, state.errors), MAX_ERROR_WAIT);
    if ("pollNow" in el.dataset && !state.errors) wait = 0.05;
    state.timer = setTimeout(function () { poll(id); }, wait * 1000);
  }

  function poll(id) {
    const el = document.getElementById(id);
    const state = stateOf(id);
    if (!el || !el.dataset.pollUrl || state.busy) return;
    if (document.hidden) return; // visibilitychange resumes it
    state.busy = true;
    const headers = { "HX-Request": "true", "HX-Target": id, "HX-Current-URL": location.href };
    if (el.dataset.etag) headers["If-None-Match"] = el.dataset.etag;
    fetch(el.dataset.pollUrl, { headers: headers, credentials: "same-origin", cache: "no-store", redirect: "manual" })
      .then(function (resp) {
        if (resp.type === "opaqueredirect") {
          location.reload(); // the session ended: the login page comes next
          return null;
        }
        if (resp.status === 304 || resp.status === 204) {
          state.errors = 0;
          state.idle += 1;
          return null;
        }
        if (!resp.ok) throw new Error("HTTP " + resp.status);
        state.errors = 0;
        state.idle = 0;
        return resp.text();
      })
      .then(function (html) {
        if (html === null) return;
        const target = document.getElementById(id);
        if (target) htmx.swap(target, html, { swapStyle: "outerHTML" });
      })
      .catch(function () {
        state.errors = Math.min(state.errors + 1, 8);
      })
      .finally(function () {
        state.busy = false;
        document.body.classList.toggle("poll-failing", state.errors > 1);
        schedule(id);
      });
  }

  function startPollers(root) {
    const scope = root && root.querySelectorAll ? root : document;
    const found = Array.from(scope.querySelectorAll("[data-poll-url]"));
    if (scope.matches && scope.matches("[data-poll-url]")) found.push(scope);
    found.forEach(function (el) {
      if (!el.id) return;
      const state = stateOf(el.id);
      if (!state.timer && !state.busy) schedule(el.id);
    });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) return;
    pollers.forEach(function (state, id) {
      clearTimeout(state.timer);
      state.timer = null;
      state.idle = 0;
      poll(id);
    });
  });

  // --- Charts (uPlot) ---------------------------------------------------------------------

  const charts = [];

  function cssVar(name, fallback) {
    const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  const PALETTE = ["--accent", "--warn", "--ok", "--bad"];

  function makeChart(fig) {
    if (fig.dataset.ready || typeof uPlot === "undefined") return;
    fig.dataset.ready = "1";
    const config = JSON.parse(fig.dataset.chart);
    const dataNode = fig.querySelector("script[type='application/json']");
    const records = dataNode ? JSON.parse(dataNode.textContent) : [];
    const plot = fig.querySelector(".chart-plot");
    const columns = [[]].concat(config.series.map(function () { return []; }));
    const chart = { config: config, columns: columns, fig: fig, u: null };
    records.forEach(function (r) { addPoint(chart, r); });
    const axisColor = cssVar("--muted", "#6b7385");
    const gridColor = cssVar("--line", "#e2e5ec");
    const fmt = config.percent
      ? function (v) { return v == null ? "-" : (100 * v).toFixed(1) + " %"; }
      : function (v) { return v == null ? "-" : Number(v).toPrecision(4); };
    const opts = {
      width: Math.max(plot.clientWidth, 240),
      height: 220,
      // A share is drawn on its whole range: a flat 0 % or 100 % line stays readable.
      scales: config.percent ? { x: { time: !!config.time }, y: { range: [0, 1] } } : { x: { time: !!config.time } },
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      axes: [
        { label: config.time ? null : config.x, stroke: axisColor, grid: { stroke: gridColor } },
        { stroke: axisColor, grid: { stroke: gridColor }, values: function (u, vals) { return vals.map(fmt); }, size: 64 },
      ],
      series: [{ label: config.time ? "time" : config.x }].concat(config.series.map(function (s, i) {
        return { label: s.label, stroke: cssVar(PALETTE[i % PALETTE.length], "#2f6fdf"), width: 2, value: function (u, v) { return fmt(v); }, spanGaps: true };
      })),
    };
    chart.u = new uPlot(opts, columns, plot);
    charts.push(chart);
    if (window.ResizeObserver) {
      new ResizeObserver(function () {
        chart.u.setSize({ width: Math.max(plot.clientWidth, 240), height: 220 });
      }).observe(plot);
    }
  }

  function addPoint(chart, record) {
    const x = record[chart.config.x];
    if (typeof x !== "number") return false;
    const xs = chart.columns[0];
    if (xs.length && x <= xs[xs.length - 1]) return false; // already drawn
    xs.push(x);
    chart.config.series.forEach(function (s, i) {
      const v = record[s.key];
      chart.columns[i + 1].push(typeof v === "number" && isFinite(v) ? v : null);
    });
    return true;
  }

  function appendRecords(root) {
    root.querySelectorAll("[data-chart-append] script[type='application/json']").forEach(function (node) {
      const records = JSON.parse(node.textContent);
      charts.forEach(function (chart) {
        if (!document.body.contains(chart.fig)) return;
        let added = false;
        records.forEach(function (r) {
          if (r.kind === chart.config.kind && addPoint(chart, r)) added = true;
        });
        if (added) {
          chart.fig.closest("[hidden]") && chart.fig.closest("[hidden]").removeAttribute("hidden");
          chart.u.setData(chart.columns);
        }
      });
      node.parentNode.remove();
    });
  }

  function trimAndReveal() {
    document.querySelectorAll("tbody[data-keep]").forEach(function (body) {
      const keep = parseInt(body.dataset.keep, 10);
      while (body.rows.length > keep) body.deleteRow(0);
    });
    document.querySelectorAll("tbody").forEach(function (body) {
      if (!body.rows.length) return;
      const hidden = body.closest("[hidden]");
      if (hidden) hidden.removeAttribute("hidden");
    });
    const none = document.getElementById("no-epochs");
    const rows = document.getElementById("epoch-rows");
    if (none && rows && rows.rows.length) none.hidden = true;
  }

  // --- Times: the viewer's zone, relative ones kept current ---------------------------------

  const LOCAL = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const STEPS = [[60, "second"], [60, "minute"], [24, "hour"], [7, "day"], [4.35, "week"], [12, "month"], [Infinity, "year"]];

  function relative(date) {
    let amount = (date.getTime() - Date.now()) / 1000;
    for (const [size, unit] of STEPS) {
      if (Math.abs(amount) < size) return RELATIVE.format(Math.round(amount), unit);
      amount /= size;
    }
    return "";
  }

  function showTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      const date = new Date(el.getAttribute("datetime"));
      if (isNaN(date)) return;
      // The page's text is UTC; the hover keeps it there.
      if ("local" in el.dataset) el.textContent = LOCAL.format(date);
      if ("relative" in el.dataset) el.textContent = relative(date);
    });
  }

  setInterval(function () { if (!document.hidden) showTimes(document); }, 15000);

  function setUp(root) {
    showTimes(root.querySelectorAll ? root : document);
    (root.querySelectorAll ? root : document).querySelectorAll("figure.chart[data-chart]").forEach(makeChart);
    appendRecords(root.querySelectorAll ? root : document);
    trimAndReveal();
    startPollers(root);
  }

  document.addEventListener("DOMContentLoaded", function () { setUp(document); });
  // htmx swaps (polls, filters, the cancel button): new content may carry a poller or records.
  document.addEventListener("htmx:load", function (evt) { setUp(evt.target); });
})();
