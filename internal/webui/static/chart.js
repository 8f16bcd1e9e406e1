// Line charts drawn as SVG: scalars (one chart per metric, a line per
// variant and task), with smoothing, a log scale, x by iteration or time,
// and hover values (mouse, or the arrow keys on a focused chart). A series
// is drawn with at most four points per pixel column (first, lowest,
// highest, last), so 50,000 points draw as fast as 2,000; every point is
// still there for the hover values.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#1f6fb2", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#be185d", "#4d7c0f", "#334155"];
  const W = 640, H = 280, M = { l: 56, r: 12, t: 12, b: 34 };

  function el(tag, attrs, parent) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.append(e);
    return e;
  }

  // smooth is TensorBoard's debiased exponential moving average.
  function smooth(ys, w) {
    if (!w) return ys;
    const out = new Array(ys.length);
    let last = 0, n = 0;
    for (let i = 0; i < ys.length; i++) {
      last = last * w + (1 - w) * ys[i];
      n++;
      out[i] = last / (1 - Math.pow(w, n));
    }
    return out;
  }

  function ticks(lo, hi, n) {
    if (!(hi > lo)) return [lo];
    const step0 = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }

  function fmt(v) {
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a >= 1e5 || a < 1e-3) return v.toExponential(2);
    return String(+v.toPrecision(5));
  }

  function fmtX(v, time) {
    if (!time) return fmt(v);
    const d = new Date(v);
    return d.toISOString().slice(11, 19);
  }

  // reduce keeps, per pixel column, the first, lowest, highest and last
  // point, in order.
  function reduce(px, py) {
    if (px.length <= 4 * (W - M.l - M.r)) return px.map((x, i) => [x, py[i]]);
    const out = [];
    let col = null, pts = [];
    const flush = () => {
      if (!pts.length) return;
      let lo = pts[0], hi = pts[0];
      for (const p of pts) { if (p[1] < lo[1]) lo = p; if (p[1] > hi[1]) hi = p; }
      const keep = [pts[0], lo, hi, pts[pts.length - 1]].sort((a, b) => a[2] - b[2]);
      keep.forEach((p, i) => { if (i === 0 || p !== keep[i - 1]) out.push([p[0], p[1]]); });
      pts = [];
    };
    for (let i = 0; i < px.length; i++) {
      const c = Math.round(px[i]);
      if (c !== col) { flush(); col = c; }
      pts.push([px[i], py[i], i]);
    }
    flush();
    return out;
  }

  // draw renders one chart. series: [{label, x: [], y: []}], x ascending.
  // A series with lines: false is drawn as markers only (a scatter plot).
  function draw(parent, { title, series, log, smoothing, time, xLabel }) {
    const fig = document.createElement("figure");
    fig.className = "chart";
    const cap = document.createElement("figcaption");
    cap.textContent = title;
    fig.append(cap);
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", tabindex: "0",
      "aria-label": `${title}: ${series.length} series; use the arrow keys for values` });
    svg.dataset.series = series.length;
    fig.append(svg);
    const shown = series.map((s) => {
      let pts = s.x.map((x, i) => [x, s.y[i]]).filter((p) => Number.isFinite(p[1]) && (!log || p[1] > 0));
      const ys = smooth(pts.map((p) => p[1]), smoothing);
      return { ...s, x: pts.map((p) => p[0]), y: ys, raw: pts.map((p) => p[1]) };
    });
    let xlo = Infinity, xhi = -Infinity, ylo = Infinity, yhi = -Infinity;
    for (const s of shown) for (let i = 0; i < s.x.length; i++) {
      xlo = Math.min(xlo, s.x[i]); xhi = Math.max(xhi, s.x[i]);
      ylo = Math.min(ylo, s.y[i]); yhi = Math.max(yhi, s.y[i]);
    }
    if (!Number.isFinite(xlo)) { parent.append(fig); cap.textContent += " (no values to draw)"; return fig; }
    if (xhi === xlo) { xlo -= 1; xhi += 1; }
    if (yhi === ylo) { const d = Math.abs(ylo) || 1; ylo -= d / 2; yhi += d / 2; }
    const ty = (v) => (log ? Math.log10(v) : v);
    const [tylo, tyhi] = [ty(ylo), ty(yhi)];
    const X = (x) => M.l + ((x - xlo) / (xhi - xlo)) * (W - M.l - M.r);
    const Y = (y) => H - M.b - ((ty(y) - tylo) / (tyhi - tylo || 1)) * (H - M.t - M.b);
    const axes = el("g", { class: "axes" }, svg);
    for (const v of ticks(tylo, tyhi, 5)) {
      const yv = log ? Math.pow(10, v) : v;
      const y = Y(yv);
      el("line", { x1: M.l, x2: W - M.r, y1: y, y2: y, class: "grid" }, axes);
      el("text", { x: M.l - 6, y: y + 4, "text-anchor": "end" }, axes).textContent = fmt(yv);
    }
    for (const v of ticks(xlo, xhi, 6)) {
      const x = X(v);
      el("line", { x1: x, x2: x, y1: M.t, y2: H - M.b, class: "grid" }, axes);
      el("text", { x, y: H - M.b + 16, "text-anchor": "middle" }, axes).textContent = fmtX(v, time);
    }
    el("text", { x: W - M.r, y: H - 4, "text-anchor": "end", class: "xlabel" }, axes).textContent = xLabel;
    shown.forEach((s, k) => {
      const color = COLORS[k % COLORS.length];
      const g = el("g", { class: "series", "data-label": s.label, "data-points": s.x.length }, svg);
      if (s.lines !== false) {
        const pts = reduce(s.x.map(X), s.y.map(Y));
        el("polyline", { points: pts.map((p) => `${p[0].toFixed(1)},${p[1].toFixed(1)}`).join(" "), stroke: color,
          class: "line", "data-drawn": pts.length }, g);
      }
      if (s.x.length <= 200 || s.lines === false) s.x.forEach((x, i) => el("circle", { cx: X(x).toFixed(1), cy: Y(s.y[i]).toFixed(1), r: 2.2, fill: color, class: "pt" }, g));
    });
    const legend = document.createElement("ul");
    legend.className = "legend";
    shown.forEach((s, k) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.setAttribute("aria-pressed", "true");
      b.style.setProperty("--c", COLORS[k % COLORS.length]);
      b.textContent = `${s.label} (${s.x.length} points)`;
      b.addEventListener("click", () => {
        const on = b.getAttribute("aria-pressed") !== "true";
        b.setAttribute("aria-pressed", String(on));
        svg.querySelectorAll(".series")[k].style.display = on ? "" : "none";
      });
      li.append(b);
      legend.append(li);
    });
    fig.append(legend);
    // Hover: the nearest point of every series at the pointer's x.
    const cursor = el("line", { y1: M.t, y2: H - M.b, class: "cursor", visibility: "hidden" }, svg);
    const tip = document.createElement("div");
    tip.className = "tip";
    tip.setAttribute("aria-live", "polite");
    fig.append(tip);
    let xs = [...new Set(shown.flatMap((s) => s.x))].sort((a, b) => a - b), at = -1;
    const nearest = (arr, v) => {
      let lo = 0, hi = arr.length - 1;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (arr[mid] < v) lo = mid + 1; else hi = mid; }
      return lo > 0 && Math.abs(arr[lo - 1] - v) <= Math.abs(arr[lo] - v) ? lo - 1 : lo;
    };
    const show = (i) => {
      at = Math.max(0, Math.min(xs.length - 1, i));
      const xv = xs[at];
      cursor.setAttribute("x1", X(xv)); cursor.setAttribute("x2", X(xv));
      cursor.setAttribute("visibility", "visible");
      const rows = shown.map((s) => {
        if (!s.x.length) return null;
        const j = nearest(s.x, xv);
        return `${s.label}: ${fmt(s.y[j])}` + (smoothing ? ` (raw ${fmt(s.raw[j])})` : "");
      }).filter(Boolean);
      tip.textContent = `${xLabel} ${fmtX(xv, time)} — ${rows.join("; ")}`;
    };
    svg.addEventListener("mousemove", (ev) => {
      const r = svg.getBoundingClientRect();
      const x = xlo + ((((ev.clientX - r.left) / r.width) * W - M.l) / (W - M.l - M.r)) * (xhi - xlo);
      show(nearest(xs, x));
    });
    svg.addEventListener("mouseleave", () => { cursor.setAttribute("visibility", "hidden"); });
    svg.addEventListener("keydown", (ev) => {
      const step = { ArrowRight: 1, ArrowLeft: -1, PageUp: 10, PageDown: -10, Home: -1e9, End: 1e9 }[ev.key];
      if (step === undefined) return;
      ev.preventDefault();
      show((at < 0 ? 0 : at) + step);
    });
    // Where the cursor stands (an x value), for a redraw to put it back.
    fig.cursorX = () => (at >= 0 && cursor.getAttribute("visibility") === "visible" ? xs[at] : null);
    fig.showX = (x) => { if (xs.length) show(nearest(xs, x)); };
    parent.append(fig);
    return fig;
  }

  // The scalars of one task, or several overlaid (compare).
  function scalarsPage(box) {
    const tasks = JSON.parse(box.dataset.series);
    const controls = { smooth: document.getElementById("smooth"), log: document.getElementById("logscale"),
      x: document.getElementById("xaxis"), out: document.getElementById("smooth-out") };
    let data = null, drawnKey = null;
    async function load() {
      const key = controls.x.value;
      try {
        const all = await Promise.all(tasks.map((t) => UI.getJSON(`/tasks/${t.id}/scalars/data?x=${key}`)));
        data = { key, all };
        render();
      } catch (e) { UI.toast(`Loading scalars failed: ${e.message}`, true); }
    }
    function render() {
      // A redraw (the refresh of a running task's charts) keeps the chart
      // the keyboard is on, and every chart's cursor where it stood.
      const figures = () => [...box.querySelectorAll("figure.chart")];
      const titleOf = (f) => f.querySelector("figcaption").textContent;
      const active = document.activeElement && document.activeElement.closest("#charts figure.chart");
      const focused = active ? titleOf(active) : null;
      const cursors = data.key !== drawnKey ? new Map() // another x axis: the old x means nothing
        : new Map(figures().map((f) => [titleOf(f), f.cursorX()]).filter(([, x]) => x !== null));
      drawnKey = data.key;
      const metrics = new Map();
      data.all.forEach((d, ti) => {
        for (const [metric, variants] of Object.entries(d.metrics || {})) {
          if (!metrics.has(metric)) metrics.set(metric, []);
          for (const [variant, s] of Object.entries(variants)) {
            const label = tasks.length > 1 ? `${tasks[ti].name} · ${variant}` : variant;
            metrics.get(metric).push({ label, x: s.x, y: s.y, xLabel: s.x_axis_label });
          }
        }
      });
      box.textContent = "";
      if (!metrics.size) { const p = document.createElement("p"); p.className = "empty"; p.textContent = "No scalars reported."; box.append(p); return; }
      const time = data.all.length > 0 && data.all[0].x === "timestamp";
      for (const [metric, series] of [...metrics.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
        series.sort((a, b) => a.label.localeCompare(b.label));
        draw(box, { title: metric, series, log: controls.log.checked, smoothing: +controls.smooth.value, time,
          xLabel: time ? "time (UTC)" : (series[0].xLabel || "iteration") });
      }
      for (const f of figures()) {
        const title = titleOf(f);
        if (title === focused) f.querySelector("svg").focus();
        if (cursors.has(title)) f.showX(cursors.get(title));
      }
    }
    controls.smooth.addEventListener("input", () => { controls.out.textContent = controls.smooth.value; if (data) render(); });
    controls.log.addEventListener("change", () => data && render());
    controls.x.addEventListener("change", load);
    const every = parseInt(box.dataset.refresh, 10);
    if (every > 0) setInterval(() => { if (!document.hidden) load(); }, every);
    document.addEventListener("ui:status", load);
    load();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const box = document.getElementById("charts");
    if (box) scalarsPage(box);
  });
  return { draw, el, COLORS, ticks, fmt };
})();
