// Dependency-free SVG charts from JSON embedded in the page: horizontal (stacked) bars, vertical bars, lines.
// <div class="chart" data-chart="hbar|bar|line|lines" data-src="ID" data-x="key" data-y="key" data-ys="a,b,c"
//      data-labels="A,B,C" data-format="int|float|pct|s"></div>
"use strict";
(() => {
  const NS = "http://www.w3.org/2000/svg";
  const COLOURS = ["#5b9dff", "#ff6b6b", "#ffb547", "#34d399", "#a78bfa", "#9aa5b8"];
  const el = (tag, attrs, parent) => { const e = document.createElementNS(NS, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); if (parent) parent.appendChild(e); return e; };
  const si = (v) => (Math.abs(v) >= 1e9 ? (v / 1e9).toFixed(1) + "G" : Math.abs(v) >= 1e6 ? (v / 1e6).toFixed(1) + "M" : Math.abs(v) >= 1e4 ? (v / 1e3).toFixed(0) + "k" : Math.abs(v) >= 1e3 ? (v / 1e3).toFixed(1) + "k" : String(Math.round(v * 100) / 100));
  const FORMATS = { int: (v) => Math.round(v).toLocaleString(), float: (v) => v.toFixed(2), pct: (v) => (v * 100).toFixed(0) + "%", s: (v) => (v >= 3600 ? (v / 3600).toFixed(1) + " h" : v >= 60 ? (v / 60).toFixed(1) + " min" : v.toFixed(1) + " s") };
  // 0 and a "nice" top (1, 2, 2.5 or 5 times a power of ten) with ticks between
  function ticks(max, n = 4) {
    if (!(max > 0)) return [0, 1];
    const raw = max / n, p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw);
    const out = []; for (let v = 0; v <= max + step * 0.999; v += step) out.push(v);
    return out;
  }
  function legend(svg, names, x, y) {
    let cx = x;
    names.forEach((name, k) => {
      el("rect", { x: cx, y: y - 8, width: 9, height: 9, rx: 2, fill: COLOURS[k % COLOURS.length] }, svg);
      const t = el("text", { x: cx + 13, y }, svg); t.textContent = name;
      cx += 13 + name.length * 6.4 + 16;
    });
  }
  function hbar(host, rows, x, ys, labels, fmt) {
    const W = host.clientWidth || 480, rowH = 24, m = { l: Math.min(170, 12 + Math.max(...rows.map((r) => String(r[x]).length)) * 6.6), r: 56, t: ys.length > 1 ? 22 : 6, b: 22 };
    const H = m.t + m.b + rowH * rows.length;
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" }, host);
    svg.style.height = `${H}px`; // CSSOM, not a style attribute: the CSP forbids inline style attributes
    const totals = rows.map((r) => ys.reduce((s, y) => s + (Number(r[y]) || 0), 0));
    const tk = ticks(Math.max(...totals)), top = tk[tk.length - 1], iw = W - m.l - m.r;
    tk.forEach((v) => {
      const gx = m.l + (v / top) * iw;
      el("line", { x1: gx, x2: gx, y1: m.t, y2: H - m.b, stroke: "#1f2836" }, svg);
      el("text", { x: gx, y: H - 6, "text-anchor": "middle" }, svg).textContent = si(v);
    });
    rows.forEach((r, i) => {
      const y = m.t + i * rowH + 5, name = String(r[x]);
      const lab = el("text", { x: m.l - 8, y: y + 11, "text-anchor": "end" }, svg); lab.textContent = name.length > 24 ? name.slice(0, 23) + "…" : name;
      let acc = 0;
      ys.forEach((yk, k) => {
        const v = Number(r[yk]) || 0, w = (v / top) * iw;
        const rect = el("rect", { x: m.l + acc, y, width: Math.max(0, w), height: rowH - 10, rx: 2, fill: COLOURS[k % COLOURS.length] }, svg);
        el("title", {}, rect).textContent = `${name} · ${(labels[k] || yk)}: ${fmt(v)}`;
        acc += w;
      });
      const tot = el("text", { x: m.l + acc + 6, y: y + 11 }, svg); tot.textContent = fmt(totals[i]); tot.setAttribute("class", "val");
    });
    if (ys.length > 1) legend(svg, ys.map((y, k) => labels[k] || y), m.l, 12);
  }
  function vbar(host, rows, x, ys, labels, fmt, asLine) {
    const W = host.clientWidth || 480, H = 220, m = { l: 44, r: 12, t: ys.length > 1 ? 24 : 10, b: 30 };
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" }, host);
    const iw = W - m.l - m.r, ih = H - m.t - m.b;
    const totals = rows.map((r) => ys.reduce((s, y) => s + (Number(r[y]) || 0), 0));
    const tk = ticks(Math.max(...totals)), top = tk[tk.length - 1];
    tk.forEach((v) => {
      const gy = m.t + ih - (v / top) * ih;
      el("line", { x1: m.l, x2: W - m.r, y1: gy, y2: gy, stroke: "#1f2836" }, svg);
      el("text", { x: m.l - 6, y: gy + 4, "text-anchor": "end" }, svg).textContent = si(v);
    });
    const step = iw / Math.max(1, rows.length), bw = Math.max(3, Math.min(48, step * 0.66));
    if (asLine) {
      const pts = totals.map((v, i) => [m.l + step * (i + 0.5), m.t + ih - (v / top) * ih]);
      el("path", { d: `M${pts[0][0]},${m.t + ih} ` + pts.map((p) => `L${p[0]},${p[1]}`).join(" ") + ` L${pts[pts.length - 1][0]},${m.t + ih} Z`, fill: "rgba(91,157,255,.12)" }, svg);
      el("polyline", { points: pts.map((p) => p.join(",")).join(" "), fill: "none", stroke: COLOURS[0], "stroke-width": 2 }, svg);
      pts.forEach((p, i) => { const c = el("circle", { cx: p[0], cy: p[1], r: 3, fill: COLOURS[0] }, svg); el("title", {}, c).textContent = `${rows[i][x]}: ${fmt(totals[i])}`; });
    } else {
      rows.forEach((r, i) => {
        let acc = 0;
        ys.forEach((y, k) => {
          const v = Number(r[y]) || 0, h = (v / top) * ih;
          const rect = el("rect", { x: m.l + step * i + (step - bw) / 2, y: m.t + ih - acc - h, width: bw, height: Math.max(0, h), rx: 2, fill: COLOURS[k % COLOURS.length] }, svg);
          el("title", {}, rect).textContent = `${r[x]} · ${labels[k] || y}: ${fmt(v)}`;
          acc += h;
        });
      });
    }
    const every = Math.ceil(rows.length / Math.max(1, Math.floor(iw / 70)));
    rows.forEach((r, i) => {
      if (i % every) return;
      const l = String(r[x]), t = el("text", { x: m.l + step * (i + 0.5), y: H - m.b + 16, "text-anchor": "middle" }, svg);
      t.textContent = l.length > 12 ? l.slice(0, 11) + "…" : l;
    });
    if (ys.length > 1) legend(svg, ys.map((y, k) => labels[k] || y), m.l, 12);
  }
  // several series over one x (a loss curve per split): each its own colour, gaps where a value is missing
  function lines(host, rows, x, ys, labels, fmt) {
    const W = host.clientWidth || 480, H = 240, m = { l: 52, r: 14, t: 26, b: 30 };
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" }, host);
    const iw = W - m.l - m.r, ih = H - m.t - m.b;
    const vals = ys.map((y) => rows.map((r) => (r[y] === null || r[y] === undefined ? null : Number(r[y]))));
    const all = vals.flat().filter((v) => v !== null && isFinite(v));
    const lo = Math.min(0, ...all), tk = ticks(Math.max(...all) - lo), top = lo + tk[tk.length - 1];
    const X = (i) => m.l + (rows.length > 1 ? (i / (rows.length - 1)) * iw : iw / 2), Y = (v) => m.t + ih - ((v - lo) / (top - lo || 1)) * ih;
    tk.forEach((d) => { const v = lo + d; el("line", { x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v), stroke: "#1f2836" }, svg); el("text", { x: m.l - 6, y: Y(v) + 4, "text-anchor": "end" }, svg).textContent = fmt(v); });
    vals.forEach((series, k) => {
      const colour = COLOURS[k % COLOURS.length];
      let d = "", on = false;
      series.forEach((v, i) => { if (v === null || !isFinite(v)) { on = false; return; } d += `${on ? "L" : "M"}${X(i)},${Y(v)} `; on = true; });
      if (d) el("path", { d, fill: "none", stroke: colour, "stroke-width": 2 }, svg);
      series.forEach((v, i) => { if (v === null || !isFinite(v)) return; const c = el("circle", { cx: X(i), cy: Y(v), r: 2.5, fill: colour }, svg); el("title", {}, c).textContent = `${x} ${rows[i][x]} · ${labels[k] || ys[k]}: ${fmt(v)}`; });
    });
    const every = Math.ceil(rows.length / Math.max(1, Math.floor(iw / 50)));
    rows.forEach((r, i) => { if (i % every) return; el("text", { x: X(i), y: H - m.b + 16, "text-anchor": "middle" }, svg).textContent = String(r[x]); });
    legend(svg, ys.map((y, k) => labels[k] || y), m.l, 14);
  }
  function draw() {
    document.querySelectorAll(".chart").forEach((host) => {
      host.innerHTML = "";
      const src = document.getElementById(host.dataset.src);
      const rows = src ? JSON.parse(src.textContent || "[]") : [];
      if (!rows.length) { host.innerHTML = `<div class="empty">${host.dataset.empty || "No data yet."}</div>`; return; }
      const ys = (host.dataset.ys || host.dataset.y).split(","), labels = (host.dataset.labels || "").split(",").filter(Boolean);
      const fmt = FORMATS[host.dataset.format || "int"] || FORMATS.int;
      const kind = host.dataset.chart;
      if (kind === "hbar") hbar(host, rows, host.dataset.x, ys, labels, fmt);
      else if (kind === "lines") {
        const keep = ys.map((y, k) => [y, labels[k] || y]).filter(([y]) => rows.some((r) => r[y] !== null && r[y] !== undefined));
        lines(host, rows, host.dataset.x, keep.map((p) => p[0]), keep.map((p) => p[1]), fmt);
      }
      else vbar(host, rows, host.dataset.x, ys, labels, fmt, kind === "line");
    });
  }
  document.addEventListener("DOMContentLoaded", draw);
  let t; window.addEventListener("resize", () => { clearTimeout(t); t = setTimeout(draw, 150); });
})();
