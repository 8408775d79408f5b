// Small helpers for every page: API calls with the session's CSRF token, forms, live job tables.
"use strict";
const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

async function api(path, opts = {}) {
  const headers = Object.assign({ "X-CSRF-Token": csrf() }, opts.headers || {});
  const resp = await fetch(path, Object.assign({ credentials: "same-origin" }, opts, { headers }));
  const type = resp.headers.get("content-type") || "";
  const body = type.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) {
    const msg = body && body.error ? body.error.message : resp.statusText;
    throw new Error(`${resp.status} ${msg}`);
  }
  return body;
}
window.ddApi = api;

function statusOf(form) {
  const next = form.nextElementSibling;
  return next && next.classList.contains("form-status") ? next : form.querySelector(".form-status") || form.parentElement.querySelector(".form-status");
}

function esc(s) { return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]); }

document.addEventListener("DOMContentLoaded", () => {
  // JSON forms: data-api-json="/api/v1/..." (values collected from named fields).
  document.querySelectorAll("form[data-api-json]").forEach((form) => {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const out = statusOf(form);
      const data = {};
      new FormData(form).forEach((v, k) => { data[k] = v; });
      let body = data;
      if (form.dataset.kind) body = { kind: form.dataset.kind, region: data.region, params: { title: data.title, query: data.query } };
      if (form.dataset.showSecret) body = { name: data.name, scopes: [data.scopes], ttl_days: Number(data.ttl_days) };
      try {
        const res = await api(form.dataset.apiJson, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
        if (form.dataset.showSecret) { if (out) out.innerHTML = `Copy it now, it is shown once: <code>${esc(res.secret)}</code>`; return; }
        if (res.kind && res.id) { location.href = `/jobs/${res.id}`; return; }
        location.reload();
      } catch (e) { if (out) { out.textContent = e.message; out.className = "form-status small error"; } }
    });
  });
  // Upload form (multipart).
  const up = document.getElementById("upload-form");
  if (up) up.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = statusOf(up);
    if (out) out.textContent = "uploading…";
    try {
      const res = await api(up.dataset.api, { method: "POST", body: new FormData(up) });
      location.href = `/jobs/${res.job.id}`;
    } catch (e) { if (out) { out.textContent = e.message; out.className = "form-status small error"; } }
  });
  document.querySelectorAll("[data-cancel]").forEach((b) => b.addEventListener("click", async () => {
    try { await api(`/api/v1/jobs/${b.dataset.cancel}/cancel`, { method: "POST" }); location.reload(); } catch (e) { alert(e.message); }
  }));
  document.querySelectorAll("[data-revoke]").forEach((b) => b.addEventListener("click", async () => {
    try { await api(`/api/v1/grants/${b.dataset.revoke}`, { method: "DELETE" }); location.reload(); } catch (e) { alert(e.message); }
  }));
  document.querySelectorAll("[data-revoke-key]").forEach((b) => b.addEventListener("click", async () => {
    try { await api(`/api/v1/keys/${b.dataset.revokeKey}`, { method: "DELETE" }); location.reload(); } catch (e) { alert(e.message); }
  }));
  // A job page follows its log and status until the job ends.
  const job = document.getElementById("job");
  if (job) {
    let last = 0;
    const log = document.getElementById("job-log");
    const tick = async () => {
      const lines = await api(`/api/v1/jobs/${job.dataset.job}/logs?after=${last}`);
      for (const l of lines.items) log.textContent += `${l.time.slice(11, 19)} ${l.level.padEnd(7)} ${l.message}\n`;
      last = lines.last_id;
      const j = await api(`/api/v1/jobs/${job.dataset.job}`);
      document.getElementById("job-progress").style.setProperty("--p", `${(j.progress * 100).toFixed(1)}%`);
      const st = document.getElementById("job-status");
      if (st.textContent !== j.status) { if (["succeeded", "failed", "cancelled"].includes(j.status)) { location.reload(); return; } st.textContent = j.status; st.className = `status ${j.status}`; }
      if (!["succeeded", "failed", "cancelled"].includes(j.status)) setTimeout(tick, 1000);
    };
    tick().catch(() => {});
  }
  const jobs = document.getElementById("jobs-table");
  if (jobs && jobs.querySelector(".status.running, .status.queued")) setTimeout(() => location.reload(), 3000);
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
        status.textContent = `${res.row_count} rows${res.truncated ? " (truncated)" : ""} · lake version ${res.version} · ${(performance.now() - t0).toFixed(0)} ms`;
        const head = res.columns.map((c) => `<th>${esc(c)}</th>`).join("");
        const rows = res.rows.map((r) => "<tr>" + res.columns.map((c) => `<td>${esc(r[c] === null ? "—" : typeof r[c] === "object" ? JSON.stringify(r[c]).slice(0, 200) : r[c])}</td>`).join("") + "</tr>").join("");
        out.innerHTML = `<table class="dense"><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table>`;
      } catch (e) { status.textContent = e.message; status.className = "small error"; out.innerHTML = ""; }
    };
    sql.addEventListener("submit", run);
    document.getElementById("sql-query").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.metaKey || e.ctrlKey)) run(e); });
  }
});
