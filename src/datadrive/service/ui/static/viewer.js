// The bird's-eye viewer: map, lights, agents (oriented boxes, trails), events on a timeline, a speed strip,
// play/pause/scrub/step, pan/zoom/follow, click to inspect an agent. A simulation rollout, when the scene
// carries one, is drawn solid over the logged scene (shown as ghosts). Canvas 2D, no libraries.
"use strict";
(() => {
  const COL = { vehicle: "#5b9dff", pedestrian: "#ff6b6b", cyclist: "#ffb547", other: "#9aa5b8" };
  const EGO = "#f4f7fb", SIM = "#34d399", HOT = "#ffb547", BG = "#0a0e14";
  const SIZE = { vehicle: [4.6, 1.9], pedestrian: [0.7, 0.7], cyclist: [1.8, 0.7], other: [1.2, 1.2] };
  const LIGHT = { stop: "#ff4d4f", caution: "#ffb547", go: "#34d399", unknown: "#6b7686" };
  const $ = (root, sel) => root.querySelector(sel);

  class Viewer {
    constructor(host, scene) {
      this.host = host; this.scene = scene;
      this.canvas = $(host, "canvas.bev"); this.ctx = this.canvas.getContext("2d");
      this.strip = $(host, "canvas.strip"); this.sctx = this.strip ? this.strip.getContext("2d") : null;
      this.scrub = $(host, ".scrub"); this.clock = $(host, ".clock"); this.playBtn = $(host, ".play");
      this.speedSel = $(host, ".speed"); this.timeline = $(host, ".timeline");
      this.opt = { trails: $(host, ".opt-trails"), ids: $(host, ".opt-ids"), follow: $(host, ".opt-follow"), log: $(host, ".opt-log") };
      this.info = document.querySelector(host.dataset.info || "#agent-info");
      this.T = scene.t_s.length; this.k = 0; this.playing = false; this.selected = null;
      this.dpr = window.devicePixelRatio || 1;
      this.ego = scene.tracks.find((t) => t.ego) || null;
      this.byId = new Map(scene.tracks.map((t) => [t.id, t]));
      this.rollout = scene.rollout || null;
      this.simTracks = this.rollout ? this.rollout.tracks.map((r) => Object.assign({}, this.byId.get(r.id) || { type: "vehicle" }, r, { sim: true })) : [];
      this.simEgo = this.simTracks.find((t) => t.ego) || null;
      this.hot = new Set((scene.events || []).flatMap((e) => e.track_ids || []));
      this.dur = Math.max(scene.t_s[this.T - 1] || 0, 1e-6);
      this.scrub.max = String(Math.max(0, this.T - 1));
      if (this.opt.follow && !this.ego) { this.opt.follow.checked = false; this.opt.follow.disabled = true; }
      this.buildTimeline(); this.bind(); this.resize(); this.fit(); this.draw();
      host.dataset.ready = "1";
    }

    // ---------------------------------------------------------------- framing
    fit() {
      let xs = [], ys = [];
      const take = (t) => t.x.forEach((x, i) => { if (x !== null) { xs.push(x); ys.push(t.y[i]); } });
      let margin = 25;
      if (this.ego) { take(this.ego); if (this.simEgo) take(this.simEgo); margin = 28; }
      else this.scene.tracks.forEach(take);
      if (!xs.length) this.scene.map.forEach((f) => f.pts.forEach((p) => { xs.push(p[0]); ys.push(p[1]); }));
      if (!xs.length) { xs = [0]; ys = [0]; }
      const q = (a, p) => { const s = [...a].sort((m, n) => m - n); return s[Math.floor(p * (s.length - 1))]; };
      const lo = this.ego ? 0 : 0.02, hi = this.ego ? 1 : 0.98;
      const x0 = q(xs, lo), x1 = q(xs, hi), y0 = q(ys, lo), y1 = q(ys, hi);
      this.cx = (x0 + x1) / 2; this.cy = (y0 + y1) / 2;
      const spanX = Math.max(x1 - x0 + 2 * margin, 50), spanY = Math.max(y1 - y0 + 2 * margin, 50);
      this.scale = Math.min(this.W / spanX, this.H / spanY);
    }
    resize() {
      // leave room below for the controls, the speed strip and the timeline in one screen
      const w = this.canvas.clientWidth || 900, h = Math.round(Math.max(320, Math.min(w * 0.58, window.innerHeight - 400)));
      this.W = w * this.dpr; this.H = h * this.dpr;
      this.canvas.width = this.W; this.canvas.height = this.H; this.canvas.style.height = `${h}px`;
      if (this.strip) { const sw = this.strip.clientWidth || w; this.strip.width = sw * this.dpr; this.strip.height = 84 * this.dpr; this.strip.style.height = "84px"; }
    }
    toPx(x, y) { return [this.W / 2 + (x - this.cx) * this.scale, this.H / 2 - (y - this.cy) * this.scale]; }
    toWorld(u, v) { return [this.cx + (u - this.W / 2) / this.scale, this.cy - (v - this.H / 2) / this.scale]; }

    // ---------------------------------------------------------------- drawing
    drawMap() {
      const c = this.ctx, px = 1 / this.scale;
      const order = ["drivable_area", "driveway", "crosswalk", "speed_bump", "road_edge", "lane_boundary", "lane_centerline", "stop_line", "other"];
      const style = {
        drivable_area: { fill: "#151c27", stroke: "#1d2635", w: 1 },
        driveway: { fill: "#131922", stroke: "#1d2635", w: 1 },
        crosswalk: { fill: "rgba(230,230,230,.07)", stroke: "#56606f", w: 1, dash: [3, 3] },
        speed_bump: { fill: "rgba(255,181,71,.08)", stroke: "#6b5a33", w: 1 },
        road_edge: { stroke: "#7a8699", w: 1.6 },
        lane_boundary: { stroke: "#465266", w: 1.1 },
        lane_centerline: { stroke: "#2c3849", w: 1, dash: [5, 7] },
        stop_line: { stroke: "#c2413f", w: 2 },
        other: { stroke: "#303a48", w: 1 },
      };
      const groups = new Map(order.map((k) => [k, []]));
      for (const f of this.scene.map) (groups.get(f.kind) || groups.get("other")).push(f);
      for (const [kind, feats] of groups) {
        const s = style[kind] || style.other;
        c.lineWidth = s.w * this.dpr * px; c.setLineDash(s.dash ? s.dash.map((d) => d * this.dpr * px) : []);
        for (const f of feats) {
          if (f.pts.length < 2) continue;
          c.beginPath(); f.pts.forEach((p, i) => (i ? c.lineTo(p[0], p[1]) : c.moveTo(p[0], p[1])));
          if (s.fill) { c.closePath(); c.fillStyle = s.fill; c.fill(); }
          c.strokeStyle = s.stroke; c.stroke();
        }
      }
      c.setLineDash([]);
    }
    box(t, k, colour, alpha, outlineOnly) {
      const c = this.ctx, x = t.x[k], y = t.y[k];
      if (x === null || x === undefined) return;
      const def = SIZE[t.type] || SIZE.other, minM = 3 / this.scale * this.dpr;
      const l = Math.max(t.length_m || def[0], minM), w = Math.max(t.width_m || def[1], minM), h = t.heading[k] || 0;
      c.save(); c.translate(x, y); c.rotate(h);
      c.globalAlpha = alpha;
      if (!outlineOnly) { c.fillStyle = colour; c.fillRect(-l / 2, -w / 2, l, w); }
      const hot = this.hot.has(t.id), sel = this.selected === t.id;
      c.strokeStyle = sel ? "#ffffff" : hot ? HOT : outlineOnly ? colour : "rgba(0,0,0,.55)";
      c.lineWidth = ((sel || hot) ? 2.2 : outlineOnly ? 1.6 : 1) * this.dpr / this.scale;
      c.strokeRect(-l / 2, -w / 2, l, w);
      if (t.type !== "pedestrian" && !outlineOnly) { // heading tick at the front
        c.beginPath(); c.moveTo(l / 2, 0); c.lineTo(l / 2 - Math.min(l * 0.4, 1.6), 0);
        c.strokeStyle = BG; c.lineWidth = Math.max(w * 0.18, 1.5 * this.dpr / this.scale); c.stroke();
      }
      c.restore(); c.globalAlpha = 1;
    }
    trail(t, k, colour, alpha, n = 30) {
      const c = this.ctx; c.beginPath(); let on = false;
      for (let i = Math.max(0, k - n); i <= k; i++) {
        if (t.x[i] === null || t.x[i] === undefined) { on = false; continue; }
        on ? c.lineTo(t.x[i], t.y[i]) : c.moveTo(t.x[i], t.y[i]); on = true;
      }
      c.strokeStyle = colour; c.globalAlpha = alpha; c.lineWidth = 1.6 * this.dpr / this.scale; c.stroke(); c.globalAlpha = 1;
    }
    colour(t) { return t.ego ? EGO : COL[t.type] || COL.other; }
    draw() {
      const c = this.ctx, k = this.k;
      if (this.opt.follow && this.opt.follow.checked) {
        const e = this.simEgo || this.ego;
        if (e && e.x[k] !== null) { this.cx = e.x[k]; this.cy = e.y[k]; }
      }
      c.setTransform(1, 0, 0, 1, 0, 0); c.fillStyle = BG; c.fillRect(0, 0, this.W, this.H);
      c.setTransform(this.scale, 0, 0, -this.scale, this.W / 2 - this.cx * this.scale, this.H / 2 + this.cy * this.scale);
      this.drawMap();
      for (const l of this.scene.lights || []) {
        const st = l.state[k]; if (st === null) continue;
        c.beginPath(); c.arc(l.x, l.y, Math.max(0.9, 4 * this.dpr / this.scale), 0, 2 * Math.PI);
        c.fillStyle = LIGHT[st] || LIGHT.unknown; c.globalAlpha = 0.9; c.fill(); c.globalAlpha = 1;
      }
      const trails = this.opt.trails && this.opt.trails.checked;
      const showLog = !this.rollout || !this.opt.log || this.opt.log.checked;
      const simIds = new Set(this.simTracks.map((t) => t.id));
      const logTracks = this.scene.tracks.filter((t) => !(this.rollout && simIds.has(t.id)));
      const order = (a) => [...a.filter((t) => !t.ego), ...a.filter((t) => t.ego)];
      for (const t of order(logTracks)) { if (trails) this.trail(t, k, this.colour(t), 0.35); this.box(t, k, this.colour(t), t.ego ? 0.95 : 0.85, false); }
      if (this.rollout) {
        if (showLog) for (const t of this.scene.tracks.filter((t) => simIds.has(t.id))) { this.trail(t, k, "#8a94a6", 0.3, 1e9); this.box(t, k, "rgba(200,208,220,.22)", 1, false); this.box(t, k, "#c8d0dc", 0.9, true); }
        for (const t of order(this.simTracks)) { if (trails) this.trail(t, k, t.ego ? SIM : this.colour(t), 0.45); this.box(t, k, t.ego ? SIM : this.colour(t), 0.95, false); }
      }
      // screen-space overlays: labels, scale bar, heads-up line
      c.setTransform(1, 0, 0, 1, 0, 0);
      const ids = this.opt.ids && this.opt.ids.checked;
      c.font = `${11 * this.dpr}px ui-monospace, SFMono-Regular, Menlo, monospace`; c.textBaseline = "bottom";
      for (const t of [...this.scene.tracks, ...this.simTracks]) {
        if (!(t.ego || ids || this.selected === t.id) || t.x[k] === null || t.x[k] === undefined) continue;
        if (this.rollout && !t.sim && simIds.has(t.id) && !(ids || this.selected === t.id)) continue;
        const [u, v] = this.toPx(t.x[k], t.y[k]);
        const ghost = this.rollout && t.ego && !t.sim; // the logged ego under a rollout: labelled below the box
        const text = t.ego ? (t.sim ? "ego (sim)" : ghost ? "ego (log)" : "ego") : t.id;
        c.fillStyle = t.sim && t.ego ? SIM : ghost ? "#aab4c3" : "#dfe5ee";
        c.fillText(text, u + 8 * this.dpr, ghost ? v + 18 * this.dpr : v - 6 * this.dpr);
      }
      const m = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000].find((s) => s * this.scale > 70 * this.dpr) || 2000;
      const y0 = this.H - 14 * this.dpr, x0 = 14 * this.dpr;
      c.strokeStyle = "#9aa5b8"; c.lineWidth = 2 * this.dpr; c.beginPath(); c.moveTo(x0, y0); c.lineTo(x0 + m * this.scale, y0); c.stroke();
      c.fillStyle = "#9aa5b8"; c.font = `${11 * this.dpr}px system-ui, sans-serif`; c.fillText(`${m} m`, x0, y0 - 4 * this.dpr);
      const live = this.scene.tracks.filter((t) => t.x[k] !== null).length;
      const es = this.ego ? this.speedAt(this.ego, k) : null, ss = this.simEgo ? this.speedAt(this.simEgo, k) : null;
      const hud = [`t ${(this.scene.t_s[k] || 0).toFixed(1)} s`, `${live} agents`];
      if (es !== null) hud.push(`ego ${es.toFixed(1)} m/s`);
      if (ss !== null) hud.push(`sim ego ${ss.toFixed(1)} m/s`);
      c.font = `600 ${12 * this.dpr}px system-ui, sans-serif`; c.textBaseline = "top";
      const text = hud.join("   ·   "), tw = c.measureText(text).width;
      c.fillStyle = "rgba(10,14,20,.78)"; c.fillRect(10 * this.dpr, 10 * this.dpr, tw + 20 * this.dpr, 24 * this.dpr);
      c.fillStyle = "#dfe5ee"; c.fillText(text, 20 * this.dpr, 16 * this.dpr);
      this.clock.textContent = `${(this.scene.t_s[k] || 0).toFixed(1)} / ${this.dur.toFixed(1)} s`;
      this.scrub.value = String(k);
      if (this.cursor) this.cursor.style.left = `${((this.scene.t_s[k] || 0) / this.dur) * 100}%`;
      this.host.dataset.step = String(k);
      this.drawStrip(); this.showInfo();
    }
    speedAt(t, k) {
      if (t.speed && t.speed[k] !== null && t.speed[k] !== undefined) return t.speed[k];
      const j = k > 0 ? k - 1 : k + 1; // finite difference where the source gives no velocity
      if (j >= this.T || t.x[k] === null || t.x[j] === null || t.x[j] === undefined) return null;
      const dt = Math.abs(this.scene.t_s[k] - this.scene.t_s[j]);
      return dt > 0 ? Math.hypot(t.x[k] - t.x[j], t.y[k] - t.y[j]) / dt : null;
    }
    drawStrip() {
      if (!this.sctx) return;
      const c = this.sctx, W = this.strip.width, H = this.strip.height, d = this.dpr, pad = 26 * d;
      c.fillStyle = "#0d121a"; c.fillRect(0, 0, W, H);
      const series = [];
      if (this.ego) series.push([this.ego, EGO, "ego", this.rollout ? [4 * d, 3 * d] : []]);
      if (this.simEgo) series.push([this.simEgo, SIM, "sim ego", []]);
      const sel = this.selected && !(this.ego && this.selected === this.ego.id) ? this.byId.get(this.selected) : null;
      if (sel) series.push([sel, "#5b9dff", sel.id, []]);
      const vals = series.map(([t]) => t.x.map((_, i) => this.speedAt(t, i)));
      const max = Math.max(5, ...vals.flat().filter((v) => v !== null)) * 1.1;
      const X = (i) => pad + ((this.scene.t_s[i] || 0) / this.dur) * (W - pad - 8 * d), Y = (v) => H - 14 * d - (v / max) * (H - 26 * d);
      c.strokeStyle = "#1f2836"; c.lineWidth = d; c.fillStyle = "#6b7686"; c.font = `${10 * d}px system-ui, sans-serif`; c.textBaseline = "middle";
      for (const v of [0, max / 2, max]) { c.beginPath(); c.moveTo(pad, Y(v)); c.lineTo(W, Y(v)); c.stroke(); c.fillText(v.toFixed(0), 4 * d, Y(v)); }
      for (const e of this.scene.events || []) { c.fillStyle = "rgba(255,181,71,.12)"; c.fillRect(X(this.scene.t_s.findIndex((t) => t >= e.t_start_s)), 0, Math.max(2, (e.t_end_s - e.t_start_s) / this.dur * (W - pad)), H); }
      series.forEach(([, colour, , dash], n) => {
        c.beginPath(); let on = false;
        vals[n].forEach((v, i) => { if (v === null) { on = false; return; } on ? c.lineTo(X(i), Y(v)) : c.moveTo(X(i), Y(v)); on = true; });
        c.setLineDash(dash); c.strokeStyle = colour; c.lineWidth = 1.6 * d; c.stroke(); c.setLineDash([]);
      });
      c.fillStyle = "#9aa5b8"; c.textBaseline = "top"; c.fillText("speed m/s", pad + 4 * d, 3 * d);
      let lx = pad + 70 * d;
      series.forEach(([, colour, name]) => { c.fillStyle = colour; c.fillRect(lx, 6 * d, 10 * d, 2 * d); c.fillStyle = "#9aa5b8"; c.fillText(name, lx + 14 * d, 3 * d); lx += c.measureText(name).width + 34 * d; });
      c.strokeStyle = "#5b9dff"; c.lineWidth = 1.5 * d; c.beginPath(); c.moveTo(X(this.k), 0); c.lineTo(X(this.k), H); c.stroke();
      this.stripX = X;
    }
    showInfo() {
      if (!this.info) return;
      const t = this.selected ? (this.simTracks.find((s) => s.id === this.selected) || this.byId.get(this.selected)) : null;
      if (!t) { this.info.innerHTML = '<p class="muted small">Click an agent to inspect it.</p>'; return; }
      const k = this.k, sp = this.speedAt(t, k), here = t.x[k] !== null && t.x[k] !== undefined;
      const row = (a, b) => `<div class="kv"><span>${a}</span><span>${b}</span></div>`;
      const esc = (s) => String(s).replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]);
      this.info.innerHTML = [
        row("id", `<code>${esc(t.ego ? `${t.id} (ego)` : t.id)}</code>`), row("type", esc(t.type)), row("category", `<code>${esc(t.category || "—")}</code>`),
        row("size", t.length_m ? `${t.length_m.toFixed(1)} × ${(t.width_m || 0).toFixed(1)} m` : "—"),
        row("speed", here && sp !== null ? `${sp.toFixed(2)} m/s` : "—"),
        row("position", here ? `${(t.x[k] + this.scene.origin[0]).toFixed(1)}, ${(t.y[k] + this.scene.origin[1]).toFixed(1)} m` : "not observed now"),
        row("heading", here && t.heading[k] !== null ? `${(t.heading[k] * 180 / Math.PI).toFixed(0)}°` : "—"),
      ].join("");
    }

    // ---------------------------------------------------------------- timeline, input, playback
    buildTimeline() {
      if (!this.timeline) return;
      this.timeline.innerHTML = "";
      const evs = this.scene.events || [];
      if (!evs.length) this.timeline.innerHTML = `<div class="empty">${this.host.dataset.noEvents || "No events on this scenario."}</div>`;
      if (evs.length > 1) this.timeline.classList.add("two-lanes");
      evs.forEach((e, i) => {
        const d = document.createElement("div");
        if (i % 2) d.classList.add("lane2"); // alternate lanes, so close events stay readable
        d.classList.add("ev"); d.textContent = e.label; d.title = `${e.label} ${e.t_start_s.toFixed(1)}–${e.t_end_s.toFixed(1)} s`;
        d.style.left = `${(e.t_start_s / this.dur) * 100}%`; d.style.width = `${Math.max(1, ((e.t_end_s - e.t_start_s) / this.dur) * 100)}%`;
        d.addEventListener("click", () => this.seek(this.scene.t_s.findIndex((t) => t >= e.t_start_s)));
        this.timeline.appendChild(d);
      });
      this.cursor = document.createElement("div"); this.cursor.className = "cursor"; this.timeline.appendChild(this.cursor);
    }
    seek(i) { this.k = Math.max(0, Math.min(this.T - 1, i)); this.draw(); }
    frame(ts) {
      if (!this.playing) return;
      const dt = this.last ? (ts - this.last) / 1000 : 0; this.last = ts; this.acc += dt * Number(this.speedSel.value);
      const t = this.scene.t_s;
      while (this.k < this.T - 1 && t[this.k + 1] - t[this.k] <= this.acc) { this.acc -= t[this.k + 1] - t[this.k]; this.k++; }
      if (this.k >= this.T - 1) this.setPlaying(false);
      this.draw();
      if (this.playing) requestAnimationFrame((x) => this.frame(x));
    }
    setPlaying(on) {
      this.playing = on; this.playBtn.textContent = on ? "❚❚" : "▶"; this.playBtn.title = on ? "pause (space)" : "play (space)";
      this.host.dataset.playing = on ? "1" : "0";
      if (on) { if (this.k >= this.T - 1) this.k = 0; this.last = 0; this.acc = 0; requestAnimationFrame((x) => this.frame(x)); }
    }
    bind() {
      const h = this.host;
      this.playBtn.addEventListener("click", () => this.setPlaying(!this.playing));
      $(h, ".back") && $(h, ".back").addEventListener("click", () => { this.setPlaying(false); this.seek(this.k - 1); });
      $(h, ".fwd") && $(h, ".fwd").addEventListener("click", () => { this.setPlaying(false); this.seek(this.k + 1); });
      $(h, ".fit") && $(h, ".fit").addEventListener("click", () => { if (this.opt.follow) this.opt.follow.checked = false; this.fit(); this.draw(); });
      this.scrub.addEventListener("input", () => { this.setPlaying(false); this.seek(Number(this.scrub.value)); });
      Object.values(this.opt).forEach((o) => o && o.addEventListener("change", () => this.draw()));
      document.addEventListener("keydown", (e) => {
        if (["TEXTAREA", "SELECT"].includes(e.target.tagName) || (e.target.tagName === "INPUT" && e.target.type !== "range" && e.target.type !== "checkbox")) return;
        if (e.code === "Space") { e.preventDefault(); this.setPlaying(!this.playing); }
        else if (e.key === "ArrowRight") { e.preventDefault(); this.seek(this.k + 1); }
        else if (e.key === "ArrowLeft") { e.preventDefault(); this.seek(this.k - 1); }
        else if (e.key === "f" && this.opt.follow && !this.opt.follow.disabled) { this.opt.follow.checked = !this.opt.follow.checked; this.draw(); }
        else if (e.key === "0") { this.fit(); this.draw(); }
      });
      let drag = null, moved = false;
      const cv = this.canvas;
      cv.addEventListener("mousedown", (e) => { drag = [e.clientX, e.clientY, this.cx, this.cy]; moved = false; cv.style.cursor = "grabbing"; });
      window.addEventListener("mouseup", (e) => {
        if (drag && !moved && e.target === cv) this.pick(e);
        drag = null; cv.style.cursor = "grab";
      });
      cv.addEventListener("mousemove", (e) => {
        if (!drag) return;
        if (Math.abs(e.clientX - drag[0]) + Math.abs(e.clientY - drag[1]) > 3) moved = true;
        if (this.opt.follow) this.opt.follow.checked = false;
        this.cx = drag[2] - ((e.clientX - drag[0]) * this.dpr) / this.scale; this.cy = drag[3] + ((e.clientY - drag[1]) * this.dpr) / this.scale; this.draw();
      });
      cv.addEventListener("wheel", (e) => {
        e.preventDefault();
        const r = cv.getBoundingClientRect(), u = (e.clientX - r.left) * this.dpr, v = (e.clientY - r.top) * this.dpr;
        const [wx, wy] = this.toWorld(u, v), f = e.deltaY < 0 ? 1.18 : 1 / 1.18;
        this.scale *= f; this.cx = wx - (u - this.W / 2) / this.scale; this.cy = wy + (v - this.H / 2) / this.scale; this.draw();
      }, { passive: false });
      if (this.strip) {
        const seekStrip = (e) => { const r = this.strip.getBoundingClientRect(), d = this.dpr, pad = 26 * d; const frac = ((e.clientX - r.left) * d - pad) / (this.strip.width - pad - 8 * d); const t = frac * this.dur; this.setPlaying(false); this.seek(this.scene.t_s.findIndex((s) => s >= t)); };
        let down = false;
        this.strip.addEventListener("mousedown", (e) => { down = true; seekStrip(e); });
        this.strip.addEventListener("mousemove", (e) => { if (down) seekStrip(e); });
        window.addEventListener("mouseup", () => { down = false; });
      }
      let rt; window.addEventListener("resize", () => { clearTimeout(rt); rt = setTimeout(() => { const s = this.scale * this.dpr / this.W; this.resize(); this.scale = s * this.W / this.dpr; this.draw(); }, 120); });
    }
    pick(e) {
      const r = this.canvas.getBoundingClientRect(), u = (e.clientX - r.left) * this.dpr, v = (e.clientY - r.top) * this.dpr;
      const [wx, wy] = this.toWorld(u, v), k = this.k;
      const all = [...this.simTracks, ...this.scene.tracks].filter((t) => t.x[k] !== null && t.x[k] !== undefined);
      const near = all.map((t) => [Math.hypot(t.x[k] - wx, t.y[k] - wy), t]).sort((a, b) => a[0] - b[0])[0];
      this.selected = near && near[0] * this.scale < 16 * this.dpr ? near[1].id : null;
      this.draw();
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-viewer]").forEach(async (host) => {
      try {
        const scene = await window.ddApi(host.dataset.viewer);
        host.viewer = new Viewer(host, scene);
        host.dispatchEvent(new CustomEvent("dd:scene", { detail: scene, bubbles: true }));
      } catch (e) {
        const err = host.querySelector(".viewer-error");
        if (err) { err.textContent = e.message; err.hidden = false; }
        host.dataset.ready = "error";
      }
    });
  });
})();
