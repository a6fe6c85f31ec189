// streamctl dashboard: polls the gateway's own JSON API and redraws four tables (shards as a bar chart,
// with a running rebalance's progress). No dependencies.
"use strict";

const REFRESH_SECONDS = 5;
const $ = (id) => document.getElementById(id);

function cell(text, field, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (field) td.dataset.field = field;
  if (cls) td.className = cls;
  return td;
}

function pill(text, good) {
  const td = document.createElement("td");
  const span = document.createElement("span");
  span.className = "pill " + (good ? "state-ok" : "state-bad");
  span.textContent = text;
  td.dataset.field = "state";
  td.appendChild(span);
  return td;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function note(id, text) {
  const el = $(id);
  el.hidden = !text;
  el.textContent = text || "";
}

async function getJson(path) {
  const res = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  const body = await res.json().catch(() => null);
  return { status: res.status, body };
}

function renderHealth(h) {
  $("cluster").textContent = h.cluster;
  const badge = $("status");
  badge.textContent = h.status;
  badge.className = "badge " + h.status;
  fill($("health"), h.stores.map((s) => {
    const tr = document.createElement("tr");
    tr.dataset.store = s.store;
    tr.append(cell(s.store), cell(s.node), pill(s.enabled ? s.detail : "disabled", s.ok || !s.enabled),
              cell(s.latency_ms, "latency", "num"));
    return tr;
  }));
}

function bar(value, top) {
  // A bar chart cell: width set through the CSSOM (the page's CSP forbids inline style attributes).
  const td = document.createElement("td");
  td.className = "bar";
  const span = document.createElement("span");
  span.style.width = (top ? (100 * value / top) : 0) + "%";
  td.appendChild(span);
  return td;
}

function renderShards(s) {
  note("shards-note", s.citus ? "" : "Citus is off: the catalogue is one PostgreSQL database.");
  const top = Math.max(0, ...s.workers.map((w) => w.distributed));
  fill($("shards"), s.workers.map((w) => {
    const tr = document.createElement("tr");
    tr.dataset.node = w.node;
    tr.append(cell(w.node), cell(w.distributed, "distributed", "num"), cell(w.reference, "reference", "num"),
              bar(w.distributed, top));
    return tr;
  }));
}

function renderRebalance(r) {
  const box = $("rebalance");
  box.hidden = !(r.citus && r.job_id !== null && r.active);
  if (box.hidden) return;
  $("rebalance-text").textContent = "rebalance job " + r.job_id + " " + r.state + ": " + r.moves_done + "/" +
    r.moves_total + " shard moves done" + (r.running ? ", " + r.running + " running" : "");
  const bar = $("rebalance-progress");
  bar.max = Math.max(1, r.moves_total);
  bar.value = r.moves_done;
}

function renderReplication(r) {
  note("replication-note", !r.enabled ? "Analytics is disabled." :
       (r.primary_reachable ? "" : "The primary " + r.primary + " is not reachable."));
  fill($("replication"), r.replicas.map((x) => {
    const tr = document.createElement("tr");
    tr.dataset.replica = x.replica;
    const good = ["streaming", "running"].includes(x.state);
    tr.append(cell(x.replica), pill(x.state, good),
              cell(x.slot_active === null ? null : (x.slot_active ? "active" : "inactive"), "slot"),
              cell(x.lag_bytes, "lag-bytes", "num"), cell(x.lag_seconds, "lag-seconds", "num"));
    return tr;
  }));
}

function renderTrending(res) {
  if (res.status !== 200) {
    note("trending-note", res.body && res.body.error ? res.body.error.message : "unavailable");
    fill($("trending"), []);
    return;
  }
  const t = res.body;
  $("trending-date").textContent = t.date;
  note("trending-note", t.items.length ? "" : "No views counted today yet.");
  fill($("trending"), t.items.map((i) => {
    const tr = document.createElement("tr");
    tr.dataset.contentId = i.content_id;
    tr.append(cell(i.rank, "rank", "num"), cell(i.title || i.content_id, "title"),
              cell(i.score, "score", "num"));
    return tr;
  }));
}

async function refresh() {
  try {
    const [health, shards, replication, trending, rebalance] = await Promise.all([
      getJson("/health"), getJson("/api/v1/ops/shards"), getJson("/api/v1/ops/replication"),
      getJson("/api/v1/content/trending/daily?limit=10"), getJson("/api/v1/ops/rebalance"),
    ]);
    if (health.body) renderHealth(health.body);
    if (shards.status === 200) renderShards(shards.body);
    if (rebalance.status === 200) renderRebalance(rebalance.body);
    if (replication.status === 200) renderReplication(replication.body);
    renderTrending(trending);
    $("error").hidden = true;
    $("updated").textContent = new Date().toLocaleTimeString();
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  } catch (err) {
    const box = $("error");
    box.hidden = false;
    box.textContent = "The gateway did not answer: " + err;
  } finally {
    setTimeout(refresh, REFRESH_SECONDS * 1000);
  }
}

$("interval").textContent = REFRESH_SECONDS;
refresh();
