// streamctl dashboard: polls the gateway's own JSON API, draws the last minutes as time-series charts
// (uPlot, vendored beside this file) and redraws the tables (shards as a bar chart, with a running
// rebalance's progress). Durations and sizes are written for people.
"use strict";

function fmtDuration(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return "–";
  const a = Math.abs(s);
  if (a === 0) return "0 s";
  if (a < 0.001) return (s * 1e6).toFixed(0) + " µs";
  if (a < 1) return +(s * 1000).toFixed(a < 0.01 ? 1 : 0) + " ms";
  if (a < 60) return +s.toFixed(1) + " s";
  if (a < 3600) return +(s / 60).toFixed(1) + " min";
  return +(s / 3600).toFixed(1) + " h";
}

function fmtBytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  let v = n;
  for (const unit of ["B", "kB", "MB", "GB"]) {
    if (Math.abs(v) < 1024 || unit === "GB") return unit === "B" ? Math.round(v) + " B" : +v.toFixed(1) + " " + unit;
    v /= 1024;
  }
  return String(n);
}

function fmtRate(r) {
  if (r === null || r === undefined || Number.isNaN(r)) return "–";
  return (r >= 100 ? Math.round(r) : +r.toFixed(r >= 10 ? 1 : 2)) + "/s";
}

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
  $("shards-section").hidden = !s.citus;  // no empty bar when Citus is off
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
              cell(fmtBytes(x.lag_bytes), "lag-bytes", "num"), cell(fmtDuration(x.lag_seconds), "lag-seconds", "num"));
    return tr;
  }));
}

const HA_ROLES = { leader: "leader", sync_standby: "sync standby", replica: "replica" };

function renderHa(h) {
  $("ha-section").hidden = !h.enabled;  // without ha the dashboard is unchanged
  fill($("ha-members"), h.groups.flatMap((g) => g.members.map((m) => {
    const tr = document.createElement("tr");
    tr.dataset.member = m.name;
    const good = m.ha_role === "leader" ? m.state === "running" : m.state === "streaming";
    tr.append(cell(g.node, "group"), cell(m.name, "member"), cell(HA_ROLES[m.ha_role] || "–", "role"),
              pill(m.state, good), cell(m.timeline, "timeline", "num"), cell(fmtBytes(m.lag_bytes), "lag-bytes", "num"));
    return tr;
  })));
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
  const seen = {};
  for (const i of t.items) seen[i.title] = (seen[i.title] || 0) + 1;
  fill($("trending"), t.items.map((i) => {
    const tr = document.createElement("tr");
    tr.dataset.contentId = i.content_id;
    // Two titles with the same name are told apart by the start of their id.
    const title = !i.title ? i.content_id : (seen[i.title] > 1 ? i.title + " (" + i.content_id.slice(0, 8) + ")" : i.title);
    tr.append(cell(i.rank, "rank", "num"), cell(title, "title"),
              cell(i.score, "score", "num"));
    return tr;
  }));
}

function renderNodes(nodes) {
  fill($("nodes"), nodes.map((n) => {
    const tr = document.createElement("tr");
    tr.dataset.node = n.node;
    if (!n.up) tr.className = "down";
    tr.append(cell(n.node, "node"), cell(n.role.replace("_", " "), "role"),
              pill(n.up ? (n.healthy ? "up" : "up, not healthy") : "down", n.up && n.healthy));
    return tr;
  }));
}

const charts = {};

function chart(id, series, data, fmt, extra) {
  // One uPlot chart; made again when its series change (a node or replica appears).
  const el = $(id);
  const key = series.map((x) => x.label).join("|");
  if (!charts[id] || charts[id].key !== key) {
    if (charts[id]) charts[id].plot.destroy();
    const width = Math.max(260, el.clientWidth || 360);
    const opts = {
      width, height: 160, legend: { show: true },
      scales: { x: { time: true }, ...(extra && extra.scales) },
      series: [{}, ...series],
      axes: [{}, { values: (u, vals) => vals.map(fmt), size: 76 }, ...((extra && extra.axes) || [])],
    };
    charts[id] = { key, plot: new uPlot(opts, data, el) };
  } else {
    charts[id].plot.setData(data);
  }
  const points = data[0].filter((_, i) => data.slice(1).some((ys) => ys[i] !== null && ys[i] !== undefined));
  el.dataset.points = String(points.length);
}

const COLOURS = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#57606a"];

function renderHistory(h) {
  $("collect-interval").textContent = h.interval;
  renderNodes(h.nodes);
  const pts = h.points;
  const xs = pts.map((p) => p.t);
  const keys = (field) => [...new Set(pts.flatMap((p) => Object.keys(p[field] || {})))].sort();
  const replicas = keys("lag_seconds");
  chart("chart-lag", replicas.map((r, i) => ({ label: r, stroke: COLOURS[i % 6], value: (u, v) => fmtDuration(v) })),
        [xs, ...replicas.map((r) => pts.map((p) => p.lag_seconds[r] ?? null))], fmtDuration);
  chart("chart-views", [{ label: "views", stroke: COLOURS[2], value: (u, v) => fmtRate(v) }],
        [xs, pts.map((p) => p.views_per_second)], fmtRate);
  chart("chart-requests", [
    { label: "requests", stroke: COLOURS[0], value: (u, v) => fmtRate(v) },
    { label: "p99", stroke: COLOURS[1], scale: "s", value: (u, v) => fmtDuration(v) },
  ], [xs, pts.map((p) => p.requests_per_second), pts.map((p) => p.p99_seconds)], fmtRate,
  { scales: { s: {} }, axes: [{ scale: "s", side: 1, values: (u, vals) => vals.map(fmtDuration), size: 76 }] });
  $("chart-shards-box").hidden = !h.citus;
  if (h.citus) {
    const nodes = keys("shard_bytes");
    chart("chart-shards", nodes.map((n, i) => ({ label: n, stroke: COLOURS[i % 6], value: (u, v) => fmtBytes(v) })),
          [xs, ...nodes.map((n) => pts.map((p) => p.shard_bytes[n] ?? null))], fmtBytes);
  }
}

async function refresh() {
  try {
    const [health, shards, replication, trending, rebalance, history, ha] = await Promise.all([
      getJson("/health"), getJson("/api/v1/ops/shards"), getJson("/api/v1/ops/replication"),
      getJson("/api/v1/content/trending/daily?limit=10"), getJson("/api/v1/ops/rebalance"),
      getJson("/api/v1/ops/history"), getJson("/api/v1/ops/ha"),
    ]);
    if (history.status === 200 && typeof uPlot !== "undefined") {
      try {
        renderHistory(history.body);
      } catch (err) {
        console.error("charts:", err);  // a chart that fails leaves the tables alone
      }
    }
    if (health.body) renderHealth(health.body);
    if (shards.status === 200) renderShards(shards.body);
    if (rebalance.status === 200) renderRebalance(rebalance.body);
    if (replication.status === 200) renderReplication(replication.body);
    if (ha.status === 200) renderHa(ha.body);
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
