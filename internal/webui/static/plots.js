// Plots: the Plotly figures the ClearML SDK reports, drawn for the kinds
// its Logger emits: scatter and line (report_scatter2d, report_line_plot),
// bar and histogram (report_histogram), heat map and confusion matrix
// (report_confusion_matrix, report_matrix), and table (report_table). Any
// other figure is shown as its JSON.
"use strict";

(() => {
  const NS = "http://www.w3.org/2000/svg";

  function text(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "object" && "text" in v) return String(v.text);
    return String(v);
  }

  function table(trace) {
    const t = document.createElement("table");
    t.className = "plot-table";
    const head = ((trace.header || {}).values || []).map((h) => (Array.isArray(h) ? h.join(" ") : text(h)));
    const cols = (trace.cells || {}).values || [];
    if (head.length) {
      const tr = document.createElement("tr");
      head.forEach((h) => { const th = document.createElement("th"); th.scope = "col"; th.textContent = h.replace(/<[^>]*>/g, ""); tr.append(th); });
      const thead = document.createElement("thead");
      thead.append(tr);
      t.append(thead);
    }
    const tbody = document.createElement("tbody");
    const rows = Math.max(0, ...cols.map((c) => (Array.isArray(c) ? c.length : 1)));
    for (let r = 0; r < rows; r++) {
      const tr = document.createElement("tr");
      cols.forEach((c) => { const td = document.createElement("td"); td.textContent = text(Array.isArray(c) ? c[r] : c); tr.append(td); });
      tbody.append(tr);
    }
    t.append(tbody);
    const wrap = document.createElement("div");
    wrap.className = "table-wrap";
    wrap.append(t);
    return wrap;
  }

  // color maps 0..1 to a light-to-dark blue scale with readable contrast.
  function color(f) {
    const a = [239, 246, 255], b = [30, 64, 175];
    const c = a.map((v, i) => Math.round(v + (b[i] - v) * f));
    return `rgb(${c.join(",")})`;
  }

  function heatmap(trace, layout) {
    const z = trace.z || [];
    const rows = z.length, cols = Math.max(0, ...z.map((r) => r.length));
    const xs = trace.x || [...Array(cols).keys()], ys = trace.y || [...Array(rows).keys()];
    const cell = Math.max(14, Math.min(48, Math.floor(480 / Math.max(rows, cols, 1))));
    const left = 100, top = 10, bottom = 70;
    const w = left + cols * cell + 10, h = top + rows * cell + bottom;
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("width", w);
    svg.setAttribute("height", h);
    svg.setAttribute("class", "heatmap");
    svg.setAttribute("role", "img");
    svg.dataset.rows = rows;
    svg.dataset.cols = cols;
    let lo = Infinity, hi = -Infinity;
    z.flat().forEach((v) => { if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
    svg.setAttribute("aria-label", `${rows} by ${cols} matrix, values ${lo} to ${hi}`);
    const add = (tag, attrs, txt) => {
      const e = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
      if (txt !== undefined) e.textContent = txt;
      svg.append(e);
      return e;
    };
    // Plotly draws row 0 at the bottom.
    for (let r = 0; r < rows; r++) {
      const y = top + (rows - 1 - r) * cell;
      add("text", { x: left - 6, y: y + cell / 2 + 4, "text-anchor": "end" }, text(ys[r]));
      for (let c = 0; c < cols; c++) {
        const v = z[r][c];
        const f = hi > lo ? (v - lo) / (hi - lo) : 0.5;
        const rect = add("rect", { x: left + c * cell, y, width: cell, height: cell, fill: color(Number.isFinite(f) ? f : 0), class: "cell" });
        const tt = document.createElementNS(NS, "title");
        tt.textContent = `${text(ys[r])} / ${text(xs[c])}: ${v}`;
        rect.append(tt);
        if (cell >= 22) add("text", { x: left + c * cell + cell / 2, y: y + cell / 2 + 4, "text-anchor": "middle", class: f > 0.55 ? "on-dark" : "" }, String(v));
      }
    }
    for (let c = 0; c < cols; c++) {
      add("text", { x: left + c * cell + cell / 2, y: top + rows * cell + 14, "text-anchor": "end",
        transform: `rotate(-40 ${left + c * cell + cell / 2} ${top + rows * cell + 14})` }, text(xs[c]));
    }
    const ax = (layout || {}).xaxis || {}, ay = (layout || {}).yaxis || {};
    if (text(ax.title)) add("text", { x: left + (cols * cell) / 2, y: h - 4, "text-anchor": "middle", class: "xlabel" }, text(ax.title));
    if (text(ay.title)) add("text", { x: 12, y: top + (rows * cell) / 2, "text-anchor": "middle", class: "xlabel",
      transform: `rotate(-90 12 ${top + (rows * cell) / 2})` }, text(ay.title));
    return svg;
  }

  // bars draws bar traces (grouped) as SVG.
  function bars(traces, layout) {
    const cats = [];
    traces.forEach((t) => (t.x || (t.y || []).map((_, i) => i)).forEach((x) => { if (!cats.includes(x)) cats.push(x); }));
    const W = 640, H = 280, M = { l: 56, r: 12, t: 12, b: 40 };
    let hi = 0, lo = 0;
    traces.forEach((t) => (t.y || []).forEach((v) => { hi = Math.max(hi, v); lo = Math.min(lo, v); }));
    if (hi === lo) hi = lo + 1;
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("class", "bars");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `bar chart: ${traces.length} series over ${cats.length} bins`);
    const Y = (v) => H - M.b - ((v - lo) / (hi - lo)) * (H - M.t - M.b);
    const band = (W - M.l - M.r) / Math.max(cats.length, 1), bw = band / (traces.length + 0.5);
    for (const v of Charts.ticks(lo, hi, 5)) {
      const l = Charts.el("line", { x1: M.l, x2: W - M.r, y1: Y(v), y2: Y(v), class: "grid" }, svg);
      Charts.el("text", { x: M.l - 6, y: Y(v) + 4, "text-anchor": "end" }, svg).textContent = Charts.fmt(v);
      l.setAttribute("data-tick", v);
    }
    traces.forEach((t, k) => {
      const xs = t.x || (t.y || []).map((_, i) => i);
      (t.y || []).forEach((v, i) => {
        const c = cats.indexOf(xs[i]);
        const r = Charts.el("rect", { x: M.l + c * band + bw * (k + 0.25), y: Math.min(Y(v), Y(0)), width: Math.max(bw, 1),
          height: Math.abs(Y(v) - Y(0)), fill: Charts.COLORS[k % Charts.COLORS.length], class: "bar" }, svg);
        Charts.el("title", {}, r).textContent = `${text(t.name)} ${text(xs[i])}: ${v}`;
      });
    });
    const every = Math.ceil(cats.length / 12);
    cats.forEach((c, i) => {
      if (i % every === 0) Charts.el("text", { x: M.l + i * band + band / 2, y: H - M.b + 16, "text-anchor": "middle" }, svg).textContent = text(c);
    });
    return svg;
  }

  // histogram bins raw values (Plotly's "histogram" trace) into bars.
  function binned(t) {
    const v = (t.x || []).filter(Number.isFinite);
    if (!v.length) return { ...t, type: "bar", x: [], y: [] };
    const lo = Math.min(...v), hi = Math.max(...v), n = Math.min(50, Math.max(1, Math.ceil(Math.sqrt(v.length))));
    const w = (hi - lo) / n || 1, counts = new Array(n).fill(0);
    v.forEach((x) => counts[Math.min(n - 1, Math.floor((x - lo) / w))]++);
    return { ...t, type: "bar", x: counts.map((_, i) => +(lo + w * (i + 0.5)).toPrecision(4)), y: counts };
  }

  function figure(p) {
    const fig = document.createElement("figure");
    fig.className = "plot";
    const cap = document.createElement("figcaption");
    const f = typeof p.figure === "string" ? null : p.figure;
    const title = f && f.layout ? text(f.layout.title) : "";
    cap.textContent = `${p.metric} / ${p.variant}` + (title && title !== p.metric ? ` — ${title}` : "") + ` (iteration ${p.iter})`;
    fig.append(cap);
    const data = (f && Array.isArray(f.data) ? f.data : []).map((t) => ({ type: "scatter", ...t }));
    const kinds = new Set(data.map((t) => t.type));
    const box = document.createElement("div");
    fig.append(box);
    if (data.length && [...kinds].every((k) => k === "table")) {
      fig.dataset.kind = "table";
      data.forEach((t) => box.append(table(t)));
    } else if (data.length && [...kinds].every((k) => k === "heatmap")) {
      fig.dataset.kind = "heatmap";
      data.forEach((t) => box.append(heatmap(t, f.layout)));
    } else if (data.length && [...kinds].every((k) => k === "bar" || k === "histogram")) {
      fig.dataset.kind = "bar";
      box.append(bars(data.map((t) => (t.type === "histogram" ? binned(t) : t)), f.layout));
    } else if (data.length && [...kinds].every((k) => k === "scatter" || k === "scattergl")) {
      fig.dataset.kind = "scatter";
      const series = data.map((t, i) => {
        const xs = t.x || (t.y || []).map((_, j) => j);
        const pts = xs.map((x, j) => [+x, +(t.y || [])[j]]).filter((q) => Number.isFinite(q[0]) && Number.isFinite(q[1]));
        const lines = (t.mode || "lines").includes("lines");
        pts.sort((a, b) => a[0] - b[0]);
        return { label: text(t.name) || `series ${i + 1}`, x: pts.map((q) => q[0]), y: pts.map((q) => q[1]), lines };
      });
      const ax = (f.layout || {}).xaxis || {};
      Charts.draw(box, { title: "", series, log: false, smoothing: 0, time: false, xLabel: text(ax.title) || "x" });
    } else {
      fig.dataset.kind = "json";
      const pre = document.createElement("pre");
      pre.className = "code";
      pre.textContent = JSON.stringify(p.figure, null, 2);
      box.append(pre);
    }
    return fig;
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const box = document.getElementById("plots");
    if (!box) return;
    try {
      const res = await UI.getJSON(`/tasks/${box.dataset.task}/plots/data`);
      box.textContent = "";
      if (!res.plots.length) { const e = document.createElement("p"); e.className = "empty"; e.textContent = "No plots reported."; box.append(e); return; }
      res.plots.forEach((p) => box.append(figure(p)));
    } catch (e) {
      box.textContent = `Loading plots failed: ${e.message}`;
    }
  });
})();
