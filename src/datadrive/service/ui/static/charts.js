// Dependency-free SVG charts: bar, stacked bar and line, from JSON embedded in the page.
"use strict";
(() => {
  const NS = "http://www.w3.org/2000/svg";
  const COLOURS = ["#4c8dff", "#e5484d", "#f5a524", "#3fb68b", "#a78bfa", "#8b95a7"];
  const el = (tag, attrs, parent) => { const e = document.createElementNS(NS, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); if (parent) parent.appendChild(e); return e; };
  const fmt = (v) => (Math.abs(v) >= 1e6 ? (v / 1e6).toFixed(1) + "M" : Math.abs(v) >= 1e3 ? (v / 1e3).toFixed(1) + "k" : String(Math.round(v * 100) / 100));

  function frame(host, rows, xKey) {
    const W = host.clientWidth || 480, H = 220, m = { l: 46, r: 10, t: 10, b: 42 };
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" }, host);
    return { svg, W, H, m, iw: W - m.l - m.r, ih: H - m.t - m.b, labels: rows.map((r) => String(r[xKey])) };
  }
  function axis(f, max) {
    for (let i = 0; i <= 4; i++) {
      const y = f.m.t + f.ih - (f.ih * i) / 4;
      el("line", { x1: f.m.l, x2: f.W - f.m.r, y1: y, y2: y, stroke: "#263041", "stroke-width": 1 }, f.svg);
      el("text", { x: f.m.l - 6, y: y + 4, "text-anchor": "end" }, f.svg).textContent = fmt((max * i) / 4);
    }
  }
  function xLabels(f, step) {
    f.labels.forEach((l, i) => {
      if (f.labels.length > 12 && i % Math.ceil(f.labels.length / 12)) return;
      const t = el("text", { x: f.m.l + step * (i + 0.5), y: f.H - f.m.b + 14, "text-anchor": "middle" }, f.svg);
      t.textContent = l.length > 14 ? l.slice(0, 13) + "…" : l;
    });
  }
  function bars(host, rows, x, ys) {
    const f = frame(host, rows, x);
    const totals = rows.map((r) => ys.reduce((s, y) => s + (Number(r[y]) || 0), 0));
    const max = Math.max(1, ...totals);
    axis(f, max);
    const step = f.iw / Math.max(1, rows.length), bw = Math.max(4, step * 0.62);
    rows.forEach((r, i) => {
      let acc = 0;
      ys.forEach((y, k) => {
        const v = Number(r[y]) || 0, h = (v / max) * f.ih;
        const rect = el("rect", { x: f.m.l + step * i + (step - bw) / 2, y: f.m.t + f.ih - acc - h, width: bw, height: h, rx: 2, fill: COLOURS[k % COLOURS.length] }, f.svg);
        el("title", {}, rect).textContent = `${r[x]} · ${y}: ${v.toLocaleString()}`;
        acc += h;
      });
    });
    xLabels(f, step);
    if (ys.length > 1) ys.forEach((y, k) => { el("rect", { x: f.m.l + k * 110, y: f.H - 14, width: 9, height: 9, fill: COLOURS[k] }, f.svg); el("text", { x: f.m.l + k * 110 + 13, y: f.H - 6 }, f.svg).textContent = y; });
  }
  function line(host, rows, x, y) {
    const f = frame(host, rows, x);
    const vals = rows.map((r) => Number(r[y]) || 0), max = Math.max(1, ...vals);
    axis(f, max);
    const step = f.iw / Math.max(1, rows.length);
    const pts = vals.map((v, i) => `${f.m.l + step * (i + 0.5)},${f.m.t + f.ih - (v / max) * f.ih}`);
    el("polyline", { points: pts.join(" "), fill: "none", stroke: COLOURS[0], "stroke-width": 2 }, f.svg);
    pts.forEach((p, i) => { const [cx, cy] = p.split(","); const c = el("circle", { cx, cy, r: 3, fill: COLOURS[0] }, f.svg); el("title", {}, c).textContent = `${rows[i][x]}: ${vals[i]}`; });
    xLabels(f, step);
  }
  function draw() {
    document.querySelectorAll(".chart").forEach((host) => {
      host.innerHTML = "";
      const src = document.getElementById(host.dataset.src);
      if (!src) return;
      const rows = JSON.parse(src.textContent || "[]");
      if (!rows.length) { host.innerHTML = '<p class="muted small">No data yet.</p>'; return; }
      const kind = host.dataset.chart;
      if (kind === "line") line(host, rows, host.dataset.x, host.dataset.y);
      else bars(host, rows, host.dataset.x, kind === "stack" ? host.dataset.ys.split(",") : [host.dataset.y]);
    });
  }
  document.addEventListener("DOMContentLoaded", draw);
  let t; window.addEventListener("resize", () => { clearTimeout(t); t = setTimeout(draw, 150); });
})();
