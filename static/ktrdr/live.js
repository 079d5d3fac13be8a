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
      // `generation` moves whenever the page itself swaps the element (a sort link, a filter, the
      // cancel button): a poll that was in flight then answers for what the page no longer shows.
      state = { timer: null, idle: 0, errors: 0, busy: false, generation: 0, acting: 0 };
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
    if (state.acting) {
      schedule(id); // the page is swapping it right now; poll what comes after
      return;
    }
    state.busy = true;
    const generation = state.generation;
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
        if (html === null || generation !== state.generation) return;
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
  const HEIGHT = 240;
  // Tick steps of a count axis (epochs): whole numbers only.
  const COUNT_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

  // A "#rrggbb" colour (the scheme's variables) with an alpha, for fills.
  function withAlpha(color, alpha) {
    const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(color);
    if (!m) return color;
    return "rgba(" + parseInt(m[1], 16) + "," + parseInt(m[2], 16) + "," + parseInt(m[3], 16) + "," + alpha + ")";
  }

  // The best point of a series (config.best = {key, mode: "min"|"max", label}): its x, or null.
  function bestIndex(chart) {
    const best = chart.config.best;
    if (!best) return null;
    const col = chart.columns[1 + chart.config.series.findIndex(function (s) { return s.key === best.key; })];
    if (!col) return null;
    let at = null;
    col.forEach(function (v, i) {
      if (v == null || (chart.log && v <= 0)) return;
      if (at === null || (best.mode === "max" ? v > col[at] : v < col[at])) at = i;
    });
    return at;
  }

  // What the x axis counts, as the page names it ("epoch", "fold × seed run").
  function xName(config) { return config.xlabel || config.x; }

  function showBest(chart) {
    const at = bestIndex(chart);
    const label = chart.fig.querySelector(".chart-best");
    if (at === null) {
      delete chart.fig.dataset.bestX;
      if (label) label.textContent = "";
      return;
    }
    const best = chart.config.best;
    const x = chart.columns[0][at];
    const v = chart.columns[1 + chart.config.series.findIndex(function (s) { return s.key === best.key; })][at];
    chart.fig.dataset.bestX = String(x);
    if (label) label.textContent = "◆ best " + xName(chart.config) + " " + x + ": " + best.label + " " + chart.fmt(v);
  }

  // A vertical dashed line and a diamond at the best point (a uPlot draw hook).
  function drawBest(chart) {
    return function (u) {
      const at = bestIndex(chart);
      if (at === null) return;
      const best = chart.config.best;
      const si = 1 + chart.config.series.findIndex(function (s) { return s.key === best.key; });
      const x = Math.round(u.valToPos(chart.columns[0][at], "x", true));
      const y = Math.round(u.valToPos(chart.columns[si][at], "y", true));
      const ctx = u.ctx;
      const r = 6 * devicePixelRatio;
      ctx.save();
      ctx.strokeStyle = cssVar("--fg", "#1d2330");
      ctx.fillStyle = cssVar("--fg", "#1d2330");
      ctx.lineWidth = devicePixelRatio;
      ctx.setLineDash([4 * devicePixelRatio, 4 * devicePixelRatio]);
      ctx.beginPath();
      ctx.moveTo(x, u.bbox.top);
      ctx.lineTo(x, u.bbox.top + u.bbox.height);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.beginPath();
      ctx.moveTo(x, y - r); ctx.lineTo(x + r, y); ctx.lineTo(x, y + r); ctx.lineTo(x - r, y);
      ctx.closePath();
      ctx.fill();
      ctx.restore();
    };
  }

  // How many bars the x scale shows now (candles when few enough).
  function visibleBars(u) {
    const xs = u.data[0];
    if (!xs.length || u.scales.x.min == null) return xs.length;
    return u.valToIdx(u.scales.x.max) - u.valToIdx(u.scales.x.min) + 1;
  }

  // OHLC candles, drawn over the plot while few bars show (uPlot's own candlestick example does
  // the same in a draw hook): body open→close, wick low→high, up/down in the scheme's colours.
  function drawCandles(chart) {
    return function (u) {
      const candles = visibleBars(u) <= chart.config.candles;
      chart.fig.dataset.mode = candles ? "candles" : "line";
      if (!candles) return;
      const xs = u.data[0];
      const i0 = Math.max(u.valToIdx(u.scales.x.min), 0);
      const i1 = Math.min(u.valToIdx(u.scales.x.max), xs.length - 1);
      const count = Math.max(i1 - i0 + 1, 1);
      const width = Math.max(Math.min(u.bbox.width / count * 0.7, 24 * devicePixelRatio), devicePixelRatio);
      const up = cssVar("--ok", "#1f7a3d");
      const down = cssVar("--bad", "#b3261e");
      const ctx = u.ctx;
      ctx.save();
      ctx.beginPath();
      ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
      ctx.clip();
      for (let i = i0; i <= i1; i++) {
        const o = u.data[1][i], h = u.data[2][i], l = u.data[3][i], c = u.data[4][i];
        if (o == null || c == null) continue;
        const x = u.valToPos(xs[i], "x", true);
        const yo = u.valToPos(o, "y", true), yc = u.valToPos(c, "y", true);
        ctx.strokeStyle = ctx.fillStyle = c >= o ? up : down;
        ctx.lineWidth = devicePixelRatio;
        ctx.beginPath();
        ctx.moveTo(Math.round(x) + 0.5, u.valToPos(h, "y", true));
        ctx.lineTo(Math.round(x) + 0.5, u.valToPos(l, "y", true));
        ctx.stroke();
        ctx.fillRect(Math.round(x - width / 2), Math.min(yo, yc), Math.round(width), Math.max(Math.abs(yc - yo), devicePixelRatio));
      }
      ctx.restore();
    };
  }

  function ohlcSeries(chart, fmt) {
    const accent = cssVar("--accent", "#2f6fdf");
    const linear = uPlot.paths.linear();
    // Lines while many bars show; nothing (the candles instead) while few do.
    function lines(u, si, i0, i1) { return visibleBars(u) <= chart.config.candles ? null : linear(u, si, i0, i1); }
    const none = function () { return null; };
    const value = function (u, v) { return fmt(v); };
    return [
      { label: "open", stroke: accent, paths: none, points: { show: false }, value: value },
      { label: "high", stroke: cssVar("--muted", "#6b7385"), width: 0.5, paths: lines, points: { show: false }, value: value },
      { label: "low", stroke: cssVar("--muted", "#6b7385"), width: 0.5, paths: lines, points: { show: false }, value: value },
      { label: "close", stroke: accent, width: 1.5, paths: lines, points: { show: false }, value: value },
    ];
  }

  // The tick labels an axis drew, also on the figure (data-x-ticks, data-y-ticks: the tests
  // read them; the canvas has no text to find).
  function ticks(chart, name, labels) {
    chart.fig.dataset[name] = labels.join("|");
    return labels;
  }

  function logSplits(u, axisIdx, min, max) {
    const out = [];
    for (let i = 0; i <= 4; i++) out.push(min * Math.pow(max / min, i / 4));
    return out;
  }

  function buildPlot(chart) {
    const config = chart.config;
    const plot = chart.fig.querySelector(".chart-plot");
    const axisColor = cssVar("--muted", "#6b7385");
    const gridColor = cssVar("--line", "#e2e5ec");
    const fmt = chart.fmt;
    const y = config.percent && !chart.log ? { range: [0, 1] } : {};
    if (chart.log) {
      // Log scale fitted to the data (not to whole decades, which flattens a loss that moves
      // within one), ticks spaced evenly on it.
      y.distr = 3;
      y.log = 10;
      y.range = function (u, min, max) {
        if (!(min > 0) || !(max > 0)) return [0.1, 10];
        const pad = Math.max(Math.pow(max / min, 0.08), 1.02);
        return [min / pad, max * pad];
      };
    }
    // The shown x range, on the figure (what a zoom changed; the tests read it).
    const hooks = { draw: [], setScale: [function (u, key) {
      if (key !== "x") return;
      chart.fig.dataset.xMin = String(u.scales.x.min);
      chart.fig.dataset.xMax = String(u.scales.x.max);
    }] };
    if (config.best) hooks.draw.push(drawBest(chart));
    if (config.ohlc) hooks.draw.push(drawCandles(chart));
    const series = config.ohlc ? ohlcSeries(chart, fmt) : config.series.map(function (s, i) {
      return { label: s.label, stroke: cssVar(PALETTE[i % PALETTE.length], "#2f6fdf"), width: 2, value: function (u, v) { return fmt(v); }, spanGaps: true };
    });
    const opts = {
      width: Math.max(plot.clientWidth, 240),
      height: HEIGHT,
      // A share is drawn on its whole range: a flat 0 % or 100 % line stays readable.
      scales: { x: { time: !!config.time }, y: y },
      legend: { live: true },
      // Drag across to zoom in on x; uPlot's double-click resets to all the data.
      cursor: { drag: { x: true, y: false, setScale: true } },
      hooks: hooks,
      bands: config.ohlc ? [{ series: [2, 3], fill: withAlpha(cssVar("--accent", "#1d5bc4"), 0.18) }] : [],
      axes: [
        { label: config.time ? "time (UTC)" : xName(config), stroke: axisColor, grid: { stroke: gridColor }, ticks: { stroke: gridColor }, incrs: config.time ? undefined : COUNT_INCRS,
          values: config.time ? undefined : function (u, vals) { return ticks(chart, "xTicks", vals.map(String)); } },
        { label: config.y || null, stroke: axisColor, grid: { stroke: gridColor }, ticks: { stroke: gridColor }, values: function (u, vals) { return ticks(chart, "yTicks", vals.map(function (v) { return v == null ? "" : chart.tick(v); })); }, size: 70,
          splits: chart.log ? logSplits : undefined,
          // uPlot hides a log axis's labels between powers of ten; these ticks are all wanted.
          filter: chart.log ? function (u, splits) { return splits; } : undefined },
      ],
      series: [{ label: config.time ? "time" : xName(config), value: config.time ? "{YYYY}-{MM}-{DD} {HH}:{mm}" : undefined }].concat(series),
    };
    if (config.time) opts.tzDate = function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); };
    plot.textContent = "";
    chart.u = new uPlot(opts, chart.columns, plot);
    chart.fig.dataset.log = chart.log ? "1" : "";
    if (config.best) showBest(chart);
  }

  function makeChart(fig) {
    if (fig.dataset.ready || typeof uPlot === "undefined") return;
    fig.dataset.ready = "1";
    const config = JSON.parse(fig.dataset.chart);
    const dataNode = fig.querySelector("script[type='application/json']");
    const records = dataNode ? JSON.parse(dataNode.textContent) : [];
    const plot = fig.querySelector(".chart-plot");
    const width = config.ohlc ? 5 : config.series.length + 1;
    const columns = [];
    for (let i = 0; i < width; i++) columns.push([]);
    const chart = { config: config, columns: columns, fig: fig, u: null, log: false };
    chart.fmt = config.percent
      ? function (v) { return v == null ? "-" : (100 * v).toFixed(1) + " %"; }
      : function (v) { return v == null ? "-" : Number(v).toPrecision(config.ohlc ? 6 : 4); };
    // Axis ticks without trailing zeros ("-0.05", not "-0.05000"); the legend keeps its width.
    chart.tick = config.percent
      ? chart.fmt
      : function (v) { return String(Number(Number(v).toPrecision(config.ohlc ? 6 : 4))); };
    if (config.ohlc) {
      records.forEach(function (r) { r.forEach(function (v, i) { columns[i].push(v); }); });
    } else {
      records.forEach(function (r) { addPoint(chart, r); });
    }
    buildPlot(chart);
    const toggle = fig.querySelector("button.chart-log");
    if (toggle) {
      toggle.hidden = false;
      toggle.addEventListener("click", function () {
        chart.log = !chart.log;
        toggle.setAttribute("aria-pressed", chart.log ? "true" : "false");
        chart.u.destroy();
        buildPlot(chart);
      });
    }
    charts.push(chart);
    if (window.ResizeObserver) {
      new ResizeObserver(function () {
        chart.u.setSize({ width: Math.max(plot.clientWidth, 240), height: HEIGHT });
      }).observe(plot);
    }
  }

  // New points keep a zoomed-in view where it is (uPlot would otherwise fit all the data).
  function redraw(chart, lastX) {
    const u = chart.u;
    const zoomed = u.scales.x.min != null && (u.scales.x.min > chart.columns[0][0] || u.scales.x.max < lastX);
    if (zoomed) {
      const min = u.scales.x.min, max = u.scales.x.max;
      u.setData(chart.columns, false);
      u.setScale("x", { min: min, max: max });
    } else {
      u.setData(chart.columns);
    }
    if (chart.config.best) showBest(chart);
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
        if (chart.config.ohlc) return;
        const xs = chart.columns[0];
        const lastX = xs.length ? xs[xs.length - 1] : null;
        let added = false;
        records.forEach(function (r) {
          if (r.kind === chart.config.kind && addPoint(chart, r)) added = true;
        });
        if (added) {
          chart.fig.closest("[hidden]") && chart.fig.closest("[hidden]").removeAttribute("hidden");
          redraw(chart, lastX);
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
  // A request of the page's own (htmx: a sort link, a filter, the cancel button) aimed at a polled
  // element wins over any poll in flight, and no poll starts until it has been swapped in.
  function pageRequest(evt, starting) {
    const target = evt.detail && evt.detail.target;
    if (!target || !target.id || !pollers.has(target.id)) return;
    const state = stateOf(target.id);
    state.generation += 1;
    state.acting = Math.max(0, state.acting + (starting ? 1 : -1));
  }
  document.addEventListener("htmx:beforeRequest", function (evt) { pageRequest(evt, true); });
  document.addEventListener("htmx:afterRequest", function (evt) { pageRequest(evt, false); });

  // htmx swaps (polls, filters, the cancel button): new content may carry a poller or records.
  document.addEventListener("htmx:load", function (evt) { setUp(evt.target); });
})();
