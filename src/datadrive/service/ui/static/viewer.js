// The bird's-eye viewer: map, tracks (boxes oriented by heading, fading trails), events on a timeline,
// play/pause/scrub, pan and zoom. Canvas 2D, no libraries.
"use strict";
(() => {
  const COL = { vehicle: "#4c8dff", pedestrian: "#e5484d", cyclist: "#f5a524", other: "#8b95a7" };
  const MAPCOL = { lane_centerline: "#243043", lane_boundary: "#3d4a60", road_edge: "#6b778c", crosswalk: "#8a7a3a", stop_line: "#a33b3b", drivable_area: "#1a2230" };
  const SIZE = { vehicle: [4.5, 1.9], pedestrian: [0.7, 0.7], cyclist: [1.8, 0.7], other: [1, 1] };

  document.addEventListener("DOMContentLoaded", async () => {
    const host = document.getElementById("viewer");
    if (!host) return;
    const canvas = document.getElementById("bev"), ctx = canvas.getContext("2d");
    const scrub = document.getElementById("scrub"), play = document.getElementById("play"), clock = document.getElementById("clock");
    const speed = document.getElementById("speed"), trails = document.getElementById("trails"), labels = document.getElementById("labels");
    const timeline = document.getElementById("timeline"), hover = document.getElementById("hover");
    let scene;
    try { scene = await window.ddApi(host.dataset.scene); } catch (e) { ctx.fillStyle = "#e5484d"; ctx.fillText(e.message, 20, 30); return; }
    const T = scene.t_s.length;
    scrub.max = String(Math.max(0, T - 1));
    // Fit the view to everything that moves (and the map around it).
    let xs = [], ys = [];
    scene.tracks.forEach((t) => t.x.forEach((x, i) => { if (x !== null) { xs.push(x); ys.push(t.y[i]); } }));
    if (!xs.length) scene.map.forEach((f) => f.pts.forEach((p) => { xs.push(p[0]); ys.push(p[1]); }));
    if (!xs.length) { xs = [0]; ys = [0]; }
    const q = (a, p) => { const s = [...a].sort((m, n) => m - n); return s[Math.floor(p * (s.length - 1))]; };
    let cx = (q(xs, 0.02) + q(xs, 0.98)) / 2, cy = (q(ys, 0.02) + q(ys, 0.98)) / 2;
    const span = Math.max(q(xs, 0.98) - q(xs, 0.02), q(ys, 0.98) - q(ys, 0.02), 30) * 1.15;
    let dpr = window.devicePixelRatio || 1, W = 0, H = 0, scale = 1;
    function resize() {
      const w = canvas.clientWidth; W = w * dpr; H = Math.round(w * 0.62) * dpr;
      canvas.width = W; canvas.height = H; canvas.style.height = `${H / dpr}px`;
      if (!scale || scale === 1) scale = Math.min(W, H) / span;
      draw();
    }
    const toPx = (x, y) => [W / 2 + (x - cx) * scale, H / 2 - (y - cy) * scale];
    let k = 0, playing = false, last = 0, acc = 0;

    // Events on the timeline (mining hits); the track ids they name are highlighted.
    const dur = Math.max(scene.t_s[T - 1] || 0, 1e-6);
    if (!scene.events.length) timeline.innerHTML = '<div class="empty">No events tagged on this scenario.</div>';
    scene.events.forEach((e) => {
      const d = document.createElement("div");
      d.className = "ev"; d.textContent = e.label; d.title = `${e.label} ${e.t_start_s.toFixed(1)}–${e.t_end_s.toFixed(1)} s`;
      d.style.left = `${(e.t_start_s / dur) * 100}%`; d.style.width = `${Math.max(1, ((e.t_end_s - e.t_start_s) / dur) * 100)}%`;
      d.addEventListener("click", () => seek(scene.t_s.findIndex((t) => t >= e.t_start_s)));
      timeline.appendChild(d);
    });
    const cursor = document.createElement("div"); cursor.className = "cursor"; timeline.appendChild(cursor);
    const hot = new Set(scene.events.flatMap((e) => e.track_ids || []));

    function drawMap() {
      for (const f of scene.map) {
        if (f.pts.length < 2) continue;
        ctx.beginPath();
        f.pts.forEach((p, i) => { const [u, v] = toPx(p[0], p[1]); i ? ctx.lineTo(u, v) : ctx.moveTo(u, v); });
        if (f.kind === "crosswalk" || f.kind === "drivable_area") { ctx.closePath(); ctx.fillStyle = f.kind === "crosswalk" ? "rgba(138,122,58,.18)" : "rgba(26,34,48,.5)"; ctx.fill(); }
        ctx.strokeStyle = MAPCOL[f.kind] || "#2a3340"; ctx.lineWidth = (f.kind === "lane_centerline" ? 1 : 1.4) * dpr;
        if (f.kind === "lane_centerline") ctx.setLineDash([4 * dpr, 6 * dpr]); else ctx.setLineDash([]);
        ctx.stroke();
      }
      ctx.setLineDash([]);
    }
    function drawTrack(t) {
      const x = t.x[k], y = t.y[k];
      const col = t.ego ? "#ffffff" : COL[t.type] || COL.other;
      if (trails.checked) {
        ctx.beginPath(); let on = false;
        for (let i = Math.max(0, k - 40); i <= k; i++) {
          if (t.x[i] === null) { on = false; continue; }
          const [u, v] = toPx(t.x[i], t.y[i]); on ? ctx.lineTo(u, v) : ctx.moveTo(u, v); on = true;
        }
        ctx.strokeStyle = col; ctx.globalAlpha = 0.35; ctx.lineWidth = 1.5 * dpr; ctx.stroke(); ctx.globalAlpha = 1;
      }
      if (x === null) return;
      const [u, v] = toPx(x, y);
      const [l, w] = [t.length_m || SIZE[t.type][0], t.width_m || SIZE[t.type][1]];
      ctx.save(); ctx.translate(u, v); ctx.rotate(-(t.heading[k] || 0));
      ctx.fillStyle = col; ctx.globalAlpha = t.ego ? 0.95 : 0.8;
      ctx.fillRect((-l / 2) * scale, (-w / 2) * scale, l * scale, w * scale);
      ctx.globalAlpha = 1; ctx.strokeStyle = hot.has(t.id) ? "#f5a524" : "rgba(0,0,0,.6)"; ctx.lineWidth = (hot.has(t.id) ? 2.5 : 1) * dpr;
      ctx.strokeRect((-l / 2) * scale, (-w / 2) * scale, l * scale, w * scale);
      ctx.beginPath(); ctx.moveTo((l / 2) * scale, 0); ctx.lineTo((l / 2) * scale - Math.min(l * scale * 0.35, 8 * dpr), 0);
      ctx.strokeStyle = "#0b0f15"; ctx.lineWidth = 2 * dpr; ctx.stroke(); ctx.restore();
      if (labels.checked || t.ego) { ctx.fillStyle = "#c9d1dd"; ctx.font = `${11 * dpr}px ui-monospace, monospace`; ctx.fillText(t.ego ? "ego" : t.id, u + 6 * dpr, v - 6 * dpr); }
    }
    function drawScale() {
      const m = [1, 2, 5, 10, 20, 50, 100, 200, 500].find((s) => s * scale > 60 * dpr) || 1000;
      ctx.strokeStyle = "#8692a6"; ctx.lineWidth = 2 * dpr; ctx.beginPath();
      ctx.moveTo(16 * dpr, H - 16 * dpr); ctx.lineTo(16 * dpr + m * scale, H - 16 * dpr); ctx.stroke();
      ctx.fillStyle = "#8692a6"; ctx.font = `${11 * dpr}px system-ui`; ctx.fillText(`${m} m`, 16 * dpr, H - 22 * dpr);
    }
    function draw() {
      ctx.fillStyle = "#0b0f15"; ctx.fillRect(0, 0, W, H);
      drawMap();
      scene.tracks.filter((t) => !t.ego).forEach(drawTrack);
      scene.tracks.filter((t) => t.ego).forEach(drawTrack);
      drawScale();
      ctx.fillStyle = "#8692a6"; ctx.font = `${11 * dpr}px system-ui`;
      const live = scene.tracks.filter((t) => t.x[k] !== null).length;
      ctx.fillText(`${scene.source} · ${scene.frame} · ${live} agents at this step`, 16 * dpr, 20 * dpr);
      clock.textContent = `${(scene.t_s[k] || 0).toFixed(1)} / ${dur.toFixed(1)} s`;
      scrub.value = String(k);
      cursor.style.left = `${((scene.t_s[k] || 0) / dur) * 100}%`;
    }
    function seek(i) { k = Math.max(0, Math.min(T - 1, i)); draw(); }
    function frame(ts) {
      if (!playing) return;
      const dt = last ? (ts - last) / 1000 : 0; last = ts; acc += dt * Number(speed.value);
      while (k < T - 1 && scene.t_s[k + 1] - scene.t_s[k] <= acc) { acc -= scene.t_s[k + 1] - scene.t_s[k]; k++; }
      if (k >= T - 1) { playing = false; play.textContent = "▶"; }
      draw();
      if (playing) requestAnimationFrame(frame);
    }
    function toggle() {
      playing = !playing; play.textContent = playing ? "❚❚" : "▶";
      if (playing) { if (k >= T - 1) k = 0; last = 0; acc = 0; requestAnimationFrame(frame); }
    }
    play.addEventListener("click", toggle);
    scrub.addEventListener("input", () => { playing = false; play.textContent = "▶"; seek(Number(scrub.value)); });
    trails.addEventListener("change", draw); labels.addEventListener("change", draw);
    document.addEventListener("keydown", (e) => {
      if (e.target.tagName === "INPUT" && e.target.type !== "range") return;
      if (e.code === "Space") { e.preventDefault(); toggle(); } else if (e.key === "ArrowRight") seek(k + 1); else if (e.key === "ArrowLeft") seek(k - 1);
    });
    let drag = null;
    canvas.addEventListener("mousedown", (e) => { drag = [e.clientX, e.clientY, cx, cy]; canvas.style.cursor = "grabbing"; });
    window.addEventListener("mouseup", () => { drag = null; canvas.style.cursor = "grab"; });
    canvas.addEventListener("mousemove", (e) => {
      const r = canvas.getBoundingClientRect();
      const mx = (e.clientX - r.left) * dpr, my = (e.clientY - r.top) * dpr;
      if (drag) { cx = drag[2] - ((e.clientX - drag[0]) * dpr) / scale; cy = drag[3] + ((e.clientY - drag[1]) * dpr) / scale; draw(); return; }
      const wx = cx + (mx - W / 2) / scale, wy = cy - (my - H / 2) / scale;
      const near = scene.tracks.filter((t) => t.x[k] !== null).map((t) => [Math.hypot(t.x[k] - wx, t.y[k] - wy), t]).sort((a, b) => a[0] - b[0])[0];
      hover.textContent = near && near[0] * scale < 20 * dpr ? `${near[1].ego ? "ego" : near[1].id} · ${near[1].category || near[1].type}` : `x ${(wx + scene.origin[0]).toFixed(1)} m, y ${(wy + scene.origin[1]).toFixed(1)} m`;
    });
    canvas.addEventListener("wheel", (e) => { e.preventDefault(); scale *= e.deltaY < 0 ? 1.15 : 1 / 1.15; draw(); }, { passive: false });
    window.addEventListener("resize", () => { scale = 0; resize(); });
    scale = 0; resize();
    host.dataset.ready = "1";
  });
})();
