// The mlipserve status page: polls v1/status every second and renders it (text only: every
// value from the server goes in through textContent, never as HTML).
"use strict";

const KEY = "mlipserve.apiKey";
const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);
const charts = {};
let timer = null;

function apiKey() { return sessionStorage.getItem(KEY) || ""; }

function fmt(x, digits = 1) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  return Number(x).toFixed(digits);
}
function ms(x) { return x === null || x === undefined ? "–" : fmt(x, x < 10 ? 2 : 1) + " ms"; }
function ago(t) {
  if (!t) return "–";
  const s = Date.now() / 1000 - t;
  return s < 90 ? `${s.toFixed(0)} s` : s < 5400 ? `${(s / 60).toFixed(0)} min` : `${(s / 3600).toFixed(1)} h`;
}
function when(t) { return t ? new Date(t * 1000).toLocaleString() : "–"; }

function show(id, on) { $(id).hidden = !on; }

// rows: list of items; cells(item) -> list of [text, className?]; key(item) -> data-key
function fillTable(id, rows, cells, key, empty) {
  const body = $(id).tBodies[0];
  const fresh = document.createElement("tbody");
  if (!rows.length) {
    const tr = fresh.insertRow();
    tr.className = "empty";
    const td = tr.insertCell();
    td.colSpan = $(id).tHead.rows[0].cells.length;
    td.textContent = empty;
  }
  for (const item of rows) {
    const tr = fresh.insertRow();
    if (key) tr.dataset.key = key(item);
    for (const [text, cls, field] of cells(item)) {
      const td = tr.insertCell();
      td.textContent = text;
      if (cls) td.className = cls;
      if (field) td.dataset.field = field;
    }
  }
  body.replaceWith(fresh);
}

function clearData() {
  for (const t of document.querySelectorAll("#dashboard tbody")) t.replaceChildren();
  for (const v of document.querySelectorAll("#dashboard .value")) v.textContent = "";
  for (const k of Object.keys(charts)) { charts[k].destroy(); delete charts[k]; }
  $("al-curves").replaceChildren();
  $("who").textContent = "";
  $("updated").textContent = "";
}

function askForKey(message) {
  clearData();
  show("dashboard", false);
  show("connecting", false);
  show("login", true);
  show("logout", false);
  $("login-error").textContent = message || "";
  show("login-error", Boolean(message));
}

function chartSize(el) { return { width: Math.max(320, el.clientWidth - 4), height: 200 }; }

function lineChart(name, el, series, data, xLabel = null, axes = [{}, { size: 56 }]) {
  if (charts[name] && charts[name].series.length !== series.length + 1) {
    charts[name].destroy(); delete charts[name];
  }
  if (!charts[name]) {
    const opts = {
      ...chartSize(el),
      scales: { x: { time: xLabel === null } },
      series: [xLabel === null ? {} : { label: xLabel }, ...series],
      axes,
      legend: { live: true },
    };
    charts[name] = new uPlot(opts, data, el);
  } else {
    charts[name].setData(data);
  }
}

const COLORS = ["#2f6fde", "#d9480f", "#2b8a3e", "#862e9c"];
function line(label, i, extra = {}) {
  const stroke = COLORS[i % COLORS.length];
  return { label, stroke, width: 1.5, spanGaps: true, points: { show: true, size: 4, fill: stroke }, ...extra };
}

function renderCharts(doc) {
  const s = doc.series;
  lineChart("latency", $("chart-latency"), [line("p50", 0), line("p99", 1)], [s.t, s.p50_ms, s.p99_ms]);
  lineChart(
    "fill", $("chart-fill"),
    [line("requests", 0), line("systems", 1), line("atoms", 2, { scale: "atoms" })],
    [s.t, s.requests_per_batch, s.systems_per_batch, s.atoms_per_batch], null,
    [{}, { size: 56 }, { scale: "atoms", side: 1, size: 64, grid: { show: false } }],
  );
  lineChart("rate", $("chart-rate"),
    [line("requests/s", 0, { fill: "rgba(47,111,222,0.12)", points: { show: false } })], [s.t, s.requests]);
  const curves = doc.harvest.filter((h) => h.rounds.length);
  const box = $("al-curves");
  for (const name of Object.keys(charts)) {
    if (name.startsWith("al:") && !curves.some((h) => "al:" + h.model === name)) {
      charts[name].destroy(); delete charts[name];
      box.querySelector(`[data-model="${CSS.escape(name.slice(3))}"]`)?.remove();
    }
  }
  for (const h of curves) {
    let fig = box.querySelector(`[data-model="${CSS.escape(h.model)}"]`);
    if (!fig) {
      fig = document.createElement("figure");
      fig.dataset.model = h.model;
      const cap = document.createElement("figcaption");
      cap.textContent = `${h.model}: held-out force MAE (meV/Å) vs labels`;
      const div = document.createElement("div");
      fig.append(cap, div);
      box.append(fig);
    }
    const x = h.rounds.map((r) => r.labels_total);
    const y = h.rounds.map((r) => r.heldout_force_mae_meV);
    const promoted = h.rounds.map((r) => (r.promoted ? r.heldout_force_mae_meV : null));
    lineChart(
      "al:" + h.model, fig.lastChild,
      [line("held-out F-MAE", 0, { points: { show: true, size: 6 } }),
       line("promoted", 2, { paths: () => null, points: { show: true, size: 11, fill: COLORS[2] } })],
      [x, y, promoted], "labels",
    );
  }
}

function render(doc) {
  show("connecting", false);
  show("login", false);
  show("dashboard", true);
  show("logout", Boolean(apiKey()));
  show("problem", false);
  $("who").textContent = `replica ${doc.replica || "?"} · mlipserve ${doc.server_version} · ` +
    (doc.auth ? `${doc.caller.role} of tenant ${doc.caller.tenant}` : "auth off");
  $("updated").textContent = "updated " + new Date(doc.time * 1000).toLocaleTimeString();
  const o = doc.overall;
  const windowRequests = doc.models.reduce((n, m) => n + (m.window.requests || 0), 0);
  $("requests-window").textContent = String(windowRequests);
  $("batches-window").textContent = String(o.batches);
  $("requests-per-batch").textContent = fmt(o.requests_per_batch, 2);
  $("atoms-per-batch").textContent = fmt(o.atoms_per_batch, 0);
  $("p50").textContent = ms(o.p50_ms);
  $("p99").textContent = ms(o.p99_ms);
  $("queue-length").textContent = doc.queue.configured ? String(doc.queue.queue_length ?? "–") : "no queue";
  $("window").textContent = `(last ${doc.window_s} s; max ${doc.max_batch_atoms} atoms per batch)`;

  fillTable("models", doc.models, (m) => [
    [m.name, null, "name"], [m.version, null, "version"], [m.default ? "yes" : "", null, "default"],
    [m.replica, null, "replica"], [m.device, null, "device"],
    [String(m.queue_depth), "num", "queue"], [String(m.requests_total), "num", "requests-total"],
    [String(m.window.requests || 0), "num", "requests"], [String(m.window.batches || 0), "num", "batches"],
    [fmt(m.window.requests_per_batch, 2), "num", "requests-per-batch"],
    [fmt(m.window.systems_per_batch, 2), "num", "systems-per-batch"],
    [fmt(m.window.atoms_per_batch, 0), "num", "atoms-per-batch"],
    [ms(m.window.p50_ms), "num", "p50"], [ms(m.window.p99_ms), "num", "p99"],
  ], (m) => `${m.name}@${m.version}`, "no models loaded");

  const tenants = Object.entries(doc.tenants).map(([t, v]) => ({ tenant: t, ...v }));
  fillTable("tenants", tenants, (t) => [
    [t.tenant, null, "tenant"], [String(t.requests), "num", "requests"], [String(t.atoms), "num", "atoms"],
    [fmt(t.compute_s * 1000, 1) + " ms", "num", "compute"], [fmt(100 * t.share, 1) + " %", "num", "share"],
  ], (t) => t.tenant, "no requests in the window");
  for (const tr of $("tenants").tBodies[0].rows) {  // a bar in front of each share
    const t = tenants.find((x) => x.tenant === tr.dataset.key);
    if (!t) continue;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.round(60 * t.share)}px`;
    tr.cells[4].prepend(bar);
  }

  const q = doc.queue;
  fillTable("workers", q.workers, (w) => [
    [w.worker, null, "worker"], [w.job, null, "job"], [w.kind, null, "kind"], [String(w.attempt), "num", "attempt"],
    [w.lease_expires_in_s === null ? "–" : fmt(w.lease_expires_in_s, 0) + " s", "num", "lease"],
  ], (w) => w.job, q.configured ? "no worker holds a lease" : "no job queue");
  const counts = Object.entries(q.counts || {}).map(
    ([kind, states]) => kind + ": " + Object.entries(states).map(([s, n]) => `${n} ${s}`).join(", "));
  $("job-counts").textContent = counts.length ? `(${counts.join("; ")})` : "";
  $("jobs-note").textContent = q.error || (q.configured ? "" : "this server has no job queue");
  show("jobs-note", Boolean(q.error) || !q.configured);
  fillTable("jobs", q.jobs, (j) => [
    [j.id, null, "id"], [j.kind, null, "kind"], [j.owner, null, "owner"], [j.state, "state-" + j.state, "state"],
    [fmt(100 * j.progress, 0) + " %", "num", "progress"], [`${j.attempts}/${j.max_attempts}`, "num", "attempts"],
    [j.worker || "", null, "worker"], [ago(j.created), "num", "age"], [j.error || "", "error", "error"],
  ], (j) => j.id, "no jobs");

  fillTable("promotions", doc.promotions.entries, (p) => [
    [when(p.at), null, "at"], [p.model, null, "model"], [p.candidate || "", null, "candidate"],
    [p.previous || "", null, "previous"], [p.promoted ? "promoted" : "kept current", null, "decision"],
    [fmt(p.candidate_force_mae), "num", "candidate-mae"], [fmt(p.current_force_mae), "num", "current-mae"],
    [p.by || "", null, "by"],
  ], (p) => `${p.model}:${p.candidate}:${p.at}`, "no promotions recorded");

  fillTable("harvest", doc.harvest, (h) => {
    const last = h.rounds[h.rounds.length - 1];
    const per = Object.entries(h.per_tenant).map(([t, n]) => `${t}: ${n}`).join(", ");
    return [
      [h.model, null, "model"], [h.error ? h.error : h.enabled ? "on" : "off", h.error ? "error" : null, "enabled"],
      [String(h.pool_size), "num", "pool"], [per, null, "per-tenant"], [String(h.rounds.length), "num", "rounds"],
      [last ? String(last.labels_total) : "–", "num", "labels"],
      [last ? fmt(last.heldout_force_mae_meV) + " meV/Å" : "–", "num", "mae"],
    ];
  }, (h) => h.model, "no models");
  renderCharts(doc);
}

async function poll() {
  clearTimeout(timer);
  const key = apiKey();
  const headers = key ? { authorization: "Bearer " + key } : {};
  let reply;
  try {
    reply = await fetch("v1/status", { headers, cache: "no-store" });
  } catch (err) {
    $("problem").textContent = "cannot reach the server: " + err;
    show("problem", true);
    timer = setTimeout(poll, POLL_MS * 3);
    return;
  }
  if (reply.status === 401 || reply.status === 403) {
    let detail = "";
    try { detail = (await reply.json()).detail || ""; } catch (e) { /* not JSON */ }
    if (key) sessionStorage.removeItem(KEY);
    askForKey(key ? `the server refused this key: ${detail}` : "");
    return;  // no polling until a key is given
  }
  if (!reply.ok) {
    $("problem").textContent = `the server answered ${reply.status}`;
    show("problem", true);
  } else {
    render(await reply.json());
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  }
  timer = setTimeout(poll, POLL_MS);
}

function start() {
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY, key);
    $("api-key").value = "";
    show("login", false);
    show("connecting", true);
    poll();
  });
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    clearTimeout(timer);
    askForKey("");
  });
  window.addEventListener("resize", () => {
    for (const c of Object.values(charts)) c.setSize(chartSize(c.root.parentElement));
  });
  poll();
}

document.addEventListener("DOMContentLoaded", start);
