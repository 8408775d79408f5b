// Small helpers for every page: API calls with the session's CSRF token, forms, tabs, live job tables.
"use strict";
const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

async function api(path, opts = {}) {
  const headers = Object.assign({ "X-CSRF-Token": csrf() }, opts.headers || {});
  const resp = await fetch(path, Object.assign({ credentials: "same-origin" }, opts, { headers }));
  const type = resp.headers.get("content-type") || "";
  const body = type.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) {
    const msg = body && body.error ? body.error.message : resp.statusText;
    throw new Error(`${resp.status} · ${msg}`);
  }
  return body;
}
window.ddApi = api;

function statusOf(form) {
  const next = form.nextElementSibling;
  return next && next.classList.contains("form-status") ? next : form.querySelector(".form-status") || form.parentElement.querySelector(".form-status");
}
function say(out, text, bad) { if (out) { out.textContent = text; out.className = `form-status small ${bad ? "error" : "muted"}`; } }
function esc(s) { return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]); }

// A form's fields as JSON: numbers from type=number, booleans from checkboxes, data-group="x" nests under x,
// empty optional fields left out.
function fields(form) {
  const out = {};
  form.querySelectorAll("input[name], select[name], textarea[name]").forEach((el) => {
    if (el.type === "file" || el.disabled) return;
    let v;
    if (el.type === "checkbox") v = el.checked;
    else if (el.value === "" ) return;
    else if (el.type === "number") v = Number(el.value);
    else v = el.value;
    const group = el.dataset.group;
    if (group) (out[group] = out[group] || {})[el.name] = v; else out[el.name] = v;
  });
  return out;
}

document.addEventListener("DOMContentLoaded", () => {
  // JSON forms: data-api-json="/api/v1/...". data-job="KIND" sends {kind, region, params: {...}}.
  // (attributes are read with getAttribute: a form's `dataset` property is shadowed by a field named "dataset")
  document.querySelectorAll("form[data-api-json]").forEach((form) => {
    const url = form.getAttribute("data-api-json"), job = form.getAttribute("data-job"), secret = form.hasAttribute("data-show-secret");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const out = statusOf(form), btn = form.querySelector("button[type=submit], button:not([type])");
      const data = fields(form);
      let body = data;
      if (job) { const { region, ...params } = data; body = { kind: job, region, params }; }
      if (secret) body = { name: data.name, scopes: [data.scopes], ttl_days: Number(data.ttl_days) };
      if (btn) btn.disabled = true;
      say(out, "sending…");
      try {
        const res = await api(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
        if (secret) { if (out) { out.innerHTML = `Copy it now, it is shown once: <code class="secret">${esc(res.secret)}</code>`; out.className = "form-status small"; } return; }
        if (res.kind && res.id) { location.href = `/jobs/${res.id}`; return; }
        location.reload();
      } catch (e) { say(out, e.message, true); } finally { if (btn) btn.disabled = false; }
    });
  });
  // Upload form (multipart).
  const up = document.getElementById("upload-form");
  if (up) up.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = statusOf(up);
    say(out, "uploading…");
    try {
      const res = await api(up.getAttribute("data-api"), { method: "POST", body: new FormData(up) });
      location.href = `/jobs/${res.job.id}`;
    } catch (e) { say(out, e.message, true); }
  });
  // Tabs: <nav class="tabs" data-tabs="NAME"><a data-tab="x"> ... <div data-panel-of="NAME" data-panel="x">
  document.querySelectorAll("[data-tabs]").forEach((nav) => {
    const name = nav.dataset.tabs, panels = document.querySelectorAll(`[data-panel-of="${name}"]`);
    const show = (tab) => {
      nav.querySelectorAll("[data-tab]").forEach((a) => a.classList.toggle("on", a.dataset.tab === tab));
      panels.forEach((p) => { p.hidden = p.dataset.panel !== tab; });
    };
    nav.querySelectorAll("[data-tab]").forEach((a) => a.addEventListener("click", (e) => { e.preventDefault(); show(a.dataset.tab); history.replaceState(null, "", `#${a.dataset.tab}`); }));
    const want = location.hash.slice(1);
    show(nav.querySelector(`[data-tab="${want}"]`) ? want : nav.querySelector("[data-tab]").dataset.tab);
  });
  document.querySelectorAll("[data-cancel]").forEach((b) => b.addEventListener("click", async () => {
    try { await api(`/api/v1/jobs/${b.dataset.cancel}/cancel`, { method: "POST" }); location.reload(); } catch (e) { alert(e.message); }
  }));
  document.querySelectorAll("[data-revoke]").forEach((b) => b.addEventListener("click", async () => {
    if (!confirm("Revoke this grant? The partner loses access at once.")) return;
    try { await api(`/api/v1/grants/${b.dataset.revoke}`, { method: "DELETE" }); location.reload(); } catch (e) { alert(e.message); }
  }));
  document.querySelectorAll("[data-revoke-key]").forEach((b) => b.addEventListener("click", async () => {
    if (!confirm("Revoke this key? Programs using it stop working at once.")) return;
    try { await api(`/api/v1/keys/${b.dataset.revokeKey}`, { method: "DELETE" }); location.reload(); } catch (e) { alert(e.message); }
  }));
  // A job page follows its log and status until the job ends.
  const job = document.getElementById("job");
  if (job) {
    let last = 0;
    const log = document.getElementById("job-log"), bar = document.getElementById("job-progress"), msg = document.getElementById("job-message");
    const tick = async () => {
      const lines = await api(`/api/v1/jobs/${job.dataset.job}/logs?after=${last}`);
      for (const l of lines.items) log.textContent += `${l.time.slice(11, 19)}  ${l.level.padEnd(7)} ${l.message}\n`;
      if (lines.items.length) log.scrollTop = log.scrollHeight;
      last = lines.last_id;
      const j = await api(`/api/v1/jobs/${job.dataset.job}`);
      bar.value = j.progress; if (msg) msg.textContent = j.message || "";
      const st = document.getElementById("job-status");
      if (st.textContent !== j.status) { if (["succeeded", "failed", "cancelled"].includes(j.status)) { location.reload(); return; } st.textContent = j.status; st.className = `status ${j.status}`; }
      if (!["succeeded", "failed", "cancelled"].includes(j.status)) setTimeout(tick, 1000);
    };
    tick().catch(() => {});
  }
  const jobs = document.getElementById("jobs-table");
  if (jobs && jobs.querySelector(".status.running, .status.queued")) setTimeout(() => location.reload(), 3000);
  // Rollout playback: the scores of the rollout drawn, beside the run's stored ones.
  document.addEventListener("dd:scene", (ev) => {
    const table = document.getElementById("rollout-scores"), scene = ev.detail;
    if (!table || !scene.scores) return;
    const fmt = (v) => (v === null || v === undefined ? '<span class="faint">—</span>' : `<span class="score ${v >= 0.8 ? "good" : v >= 0.5 ? "mid" : "poor"}">${Number(v).toFixed(3)}</span>`);
    table.querySelectorAll("tr[data-metric]").forEach((tr) => {
      const k = tr.dataset.metric;
      tr.querySelector(".rollout").innerHTML = fmt(scene.scores[k]);
      tr.querySelector(".stored").innerHTML = fmt(scene.stored_scores ? scene.stored_scores[k] : null);
    });
  });
  // The assistant's chat.
  const chat = document.getElementById("chat");
  if (chat) {
    const list = document.getElementById("messages"), input = document.getElementById("question"), form = document.getElementById("ask-form");
    const add = (cls, html) => { const d = document.createElement("div"); d.className = `msg ${cls}`; d.innerHTML = html; list.appendChild(d); list.scrollTop = list.scrollHeight; return d; };
    const ask = async (q) => {
      add("me", esc(q));
      const pending = add("bot pending", "…");
      const v = document.getElementById("vehicle");
      try {
        const res = await api(`/api/v1/regions/${chat.dataset.region}/assistant`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ question: q, vehicle: v ? v.value : null }) });
        // the answer's text cites its evidence itself; the tools it called are listed below it
        const tools = (res.tools || []).map((t) => `${t.tool}(${Object.entries(t.args || {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ")})`);
        const notes = (res.notes || []).map((n) => `<div class="note">${esc(n)}</div>`).join("");
        pending.className = `msg bot${res.answered ? "" : " unanswered"}`;
        pending.innerHTML = `<div class="answer">${esc(res.answer)}</div>${notes}` +
          (tools.length ? `<details><summary>tools (${tools.length})</summary><ul>${tools.map((t) => `<li>${esc(t)}</li>`).join("")}</ul></details>` : "") +
          `<div class="meta">${esc(res.intent || "")} · ${res.numbers_checked ? `${res.numbers} numbers checked against the data` : "numbers NOT checked"} · ${(res.latency_s * 1000).toFixed(0)} ms</div>`;
      } catch (e) { pending.className = "msg bot error"; pending.textContent = e.message; }
    };
    form.addEventListener("submit", (ev) => { ev.preventDefault(); const q = input.value.trim(); if (q) { input.value = ""; ask(q); } });
    document.querySelectorAll("[data-ask]").forEach((a) => a.addEventListener("click", (e) => { e.preventDefault(); ask(a.dataset.ask); }));
  }
  // SQL console.
  const sql = document.getElementById("sql-form");
  if (sql) {
    const run = async (ev) => {
      if (ev) ev.preventDefault();
      const status = document.getElementById("sql-status"), out = document.getElementById("sql-result");
      status.textContent = "running…"; status.className = "muted small";
      const t0 = performance.now();
      try {
        const res = await api(`/api/v1/regions/${sql.dataset.region}/sql`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ query: document.getElementById("sql-query").value }) });
        status.textContent = `${res.row_count.toLocaleString()} rows${res.truncated ? ` (first ${res.rows.length.toLocaleString()} shown)` : ""} · lake version ${res.version} · ${(performance.now() - t0).toFixed(0)} ms`;
        // numeric columns right-aligned; floats to 6 significant digits without trailing zeros
        const numeric = new Set(res.columns.filter((c) => { const v = res.rows.map((r) => r[c]).find((x) => x !== null); return typeof v === "number"; }));
        const head = res.columns.map((c) => `<th class="${numeric.has(c) ? "r" : ""}">${esc(c)}</th>`).join("");
        const cell = (v) => v === null ? '<span class="faint">null</span>' : typeof v === "number" ? (Number.isInteger(v) ? String(v) : String(+v.toPrecision(6))) : typeof v === "object" ? esc(JSON.stringify(v).slice(0, 200)) : esc(v);
        const rows = res.rows.map((r) => "<tr>" + res.columns.map((c) => `<td class="${numeric.has(c) ? "r num" : ""}">${cell(r[c])}</td>`).join("") + "</tr>").join("");
        out.innerHTML = res.rows.length ? `<table class="dense"><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table>` : '<div class="empty-state"><b>No rows.</b></div>';
      } catch (e) { status.textContent = e.message; status.className = "small error"; out.innerHTML = ""; }
    };
    sql.addEventListener("submit", run);
    document.getElementById("sql-query").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.metaKey || e.ctrlKey)) run(e); });
    document.querySelectorAll("[data-example]").forEach((a) => a.addEventListener("click", (e) => { e.preventDefault(); document.getElementById("sql-query").value = a.dataset.example; run(); }));
    if (sql.dataset.autorun) run();
    // The tables and their columns, from the same endpoint (information_schema of the caller's snapshot).
    const schema = document.getElementById("sql-schema");
    if (schema && sql.dataset.autorun) api(`/api/v1/regions/${sql.dataset.region}/sql`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ query: "SELECT table_name AS t, column_name AS c, data_type AS d FROM information_schema.columns ORDER BY table_name, ordinal_position" }) })
      .then((res) => {
        const by = new Map();
        res.rows.forEach((r) => { if (!by.has(r.t)) by.set(r.t, []); by.get(r.t).push(r); });
        schema.innerHTML = [...by].map(([t, cols]) => `<details><summary>${esc(t)} <span class="faint">${cols.length}</span></summary><div class="cols">${cols.map((c) => `<a href="#" data-col="${esc(c.c)}">${esc(c.c)}<i>${esc(c.d.toLowerCase())}</i></a>`).join("")}</div></details>`).join("");
        schema.querySelectorAll("[data-col]").forEach((a) => a.addEventListener("click", (e) => {
          e.preventDefault(); const q = document.getElementById("sql-query"), at = q.selectionStart;
          q.value = q.value.slice(0, at) + a.dataset.col + q.value.slice(q.selectionEnd); q.focus(); q.selectionStart = q.selectionEnd = at + a.dataset.col.length;
        }));
      }).catch((e) => { schema.textContent = e.message; });
  }
});
