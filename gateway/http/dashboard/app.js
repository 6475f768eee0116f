// Tollgate dashboard: reads /v1/reports/costs with the key the user typed (or passed in the URL
// fragment, which never reaches a server or its logs) and draws the charts with Chart.js, served by
// the gateway itself (vendored): no network beyond the gateway, the machines that run it are often offline.
"use strict";

const $ = (id) => document.getElementById(id);

function formatUsd(value) {
  if (value === null || value === undefined) return "-";
  const digits = Math.abs(value) >= 100 ? 2 : Math.abs(value) >= 1 ? 4 : 6;
  return "$" + value.toFixed(digits);
}
const formatCount = (value) => String(value);
const formatPercent = (value) => (100 * value).toFixed(1) + "%";

function show(id, value, format) {
  const element = $(id);
  element.textContent = format(value);
  element.dataset.value = String(value);
}

// Charts are drawn by Chart.js (vendored: gateway/http/dashboard/vendor), one canvas per chart,
// replaced whenever the report is drawn again.
const COLORS = { spend: "#2f6fde", flagship: "#e4572e", idle: "#c9d3e3", text: "#667085" };

function chartIn(container, config) {
  const previous = container.querySelector("canvas");
  if (previous && Chart.getChart(previous)) Chart.getChart(previous).destroy();
  const canvas = document.createElement("canvas");
  container.replaceChildren(canvas);
  const base = { animation: false, responsive: true, maintainAspectRatio: false,
                 plugins: { legend: { position: "bottom", labels: { color: COLORS.text } } } };
  container.style.height = `${config.height || 240}px`;
  return new Chart(canvas, { ...config, options: { ...base, ...config.options, plugins: { ...base.plugins, ...(config.options || {}).plugins } } });
}

// Horizontal bars: one row per item, the value as the tooltip and the axis in the item's unit.
function horizontalBars(container, items, format, label) {
  chartIn(container, {
    type: "bar",
    height: 50 + 28 * Math.max(items.length, 1),
    data: { labels: items.map((item) => item.label),
            datasets: [{ label, data: items.map((item) => item.value), backgroundColor: COLORS.spend }] },
    options: { indexAxis: "y", plugins: { legend: { display: false },
                                          tooltip: { callbacks: { label: (c) => format(c.parsed.x) } } },
               scales: { x: { beginAtZero: true, ticks: { callback: (v) => format(v) } } } },
  });
}

// Spend per day as bars, with what the flagship alone would have cost as a mark on each day (a
// line joining the days drew a ramp from $0 into a single day with data, as if spend had grown).
function dayChart(container, days) {
  chartIn(container, {
    type: "bar",
    data: {
      labels: days.map((day) => day.group.slice(5)),
      datasets: [
        { type: "bar", label: "spend", data: days.map((day) => day.cost_usd), backgroundColor: COLORS.spend, order: 2 },
        { type: "line", label: "flagship only", data: days.map((day) => day.flagship_only_usd || null), showLine: false,
          pointStyle: "line", pointRadius: 10, pointBorderWidth: 3, borderColor: COLORS.flagship,
          backgroundColor: COLORS.flagship, order: 1 },
      ],
    },
    options: { scales: { y: { beginAtZero: true, title: { display: true, text: "USD per UTC day" },
                              ticks: { callback: (v) => formatUsd(v) } } },
               plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${formatUsd(c.parsed.y)}` } } } },
  });
}

function table(element, rows, columns) {
  const head = document.createElement("tr");
  for (const [title] of columns) head.append(Object.assign(document.createElement("th"), { textContent: title }));
  const body = rows.map((row) => {
    const tr = document.createElement("tr");
    tr.dataset.group = row.group;
    for (const [, key, format] of columns) {
      const td = Object.assign(document.createElement("td"), { textContent: format(row[key]) });
      td.dataset.field = key;
      td.dataset.value = String(row[key]);
      tr.append(td);
    }
    return tr;
  });
  element.replaceChildren(head, ...body);
}

async function fetchReport(key, params) {
  const response = await fetch("/v1/reports/costs?" + new URLSearchParams(params), {
    headers: { authorization: "Bearer " + key },
  });
  const body = await response.json();
  if (!response.ok) {
    const error = new Error((body.error && body.error.message) || `HTTP ${response.status}`);
    error.code = body.error && body.error.code;
    throw error;
  }
  return body;
}

// The backend report is for admin keys across all tenants: a tenant key gets 403 admin_only,
// and the section stays hidden.
async function fetchDeployments(key, params) {
  if (params.tenant) return null;
  try {
    return await fetchReport(key, { from: params.from, to: params.to, group_by: "backend" });
  } catch (error) {
    if (error.code === "admin_only") return null;
    throw error;
  }
}

// One bar per deployment: its GPU bill, split into what the priced calls absorbed and idle capacity.
function billBars(container, rows) {
  chartIn(container, {
    type: "bar",
    height: 70 + 32 * Math.max(rows.length, 1),
    data: { labels: rows.map((row) => `${row.group} (${formatPercent(row.utilization || 0)} used)`),
            datasets: [{ label: "attributed to calls", data: rows.map((row) => Math.max(row.attributed_usd || 0, 0)),
                         backgroundColor: COLORS.spend },
                       { label: "idle capacity", data: rows.map((row) => Math.max(row.idle_usd || 0, 0)),
                         backgroundColor: COLORS.idle }] },
    options: { indexAxis: "y", scales: { x: { stacked: true, beginAtZero: true, title: { display: true, text: "USD of GPU bill" },
                                               ticks: { callback: (v) => formatUsd(v) } },
                                         y: { stacked: true } },
               plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${formatUsd(c.parsed.x)}` } } } },
  });
}

function renderDeployments(report) {
  const section = $("deployments");
  const rows = report ? report.groups.filter((row) => row.bill_usd !== null) : [];
  section.hidden = rows.length === 0;
  if (!rows.length) return;
  billBars($("chart-deployments"), rows);
  const hours = (value) => (value === null ? "-" : value.toFixed(value >= 10 ? 1 : 4));
  const share = (value) => (value === null ? "-" : formatPercent(value));
  table($("table-deployments"), rows, [["Deployment", "group", String], ["Replica-hours", "replica_hours", hours],
    ["GPU bill", "bill_usd", formatUsd], ["Attributed to calls", "attributed_usd", formatUsd],
    ["Idle capacity", "idle_usd", formatUsd], ["Utilization (measured)", "utilization", share],
    ["Busy share", "busy_share", share], ["Planned utilization", "planned_utilization", share],
    ["Requests", "requests", formatCount]]);
}

function render(byDay, byModel, byRoute) {
  const totals = byDay.totals;
  show("total-spend", totals.cost_usd, formatUsd);
  show("total-flagship", totals.flagship_only_usd, formatUsd);
  show("total-savings", totals.savings_usd, formatUsd);
  show("total-routing-savings", totals.routing_savings_usd, formatUsd);
  show("total-cache-savings", totals.cache_savings_usd, formatUsd);
  show("total-requests", totals.requests, formatCount);
  show("escalation-rate", totals.escalation_rate, formatPercent);
  show("cache-hits", totals.cache_hits, formatCount);
  const share = totals.flagship_only_usd > 0 ? totals.savings_usd / totals.flagship_only_usd : 0;
  $("savings-share").textContent = `${formatPercent(share)} of flagship-only`;
  $("escalation-detail").textContent = `${totals.escalated} of ${totals.routed} routed calls`;
  dayChart($("chart-days"), byDay.groups);
  horizontalBars($("chart-models"), byModel.groups.map((g) => ({ label: g.group, value: g.cost_usd })), formatUsd, "spend");
  table($("table-models"), byModel.groups, [["Model", "group", String], ["Requests", "requests", formatCount],
    ["Tokens out", "completion_tokens", formatCount], ["Spend", "cost_usd", formatUsd]]);
  horizontalBars($("chart-routes"), byRoute.groups.map((g) => ({ label: g.group, value: g.requests })), formatCount, "requests");
  table($("table-routes"), byRoute.groups, [["Route", "group", String], ["Requests", "requests", formatCount],
    ["Spend", "cost_usd", formatUsd], ["Escalated", "escalated", formatCount]]);
}

async function load() {
  const key = $("api-key").value.trim();
  if (!key) return;
  sessionStorage.setItem("tollgate-key", key);
  const params = { from: $("from").value, to: $("to").value };
  if ($("tenant").value.trim()) params.tenant = $("tenant").value.trim();
  const status = $("status");
  status.className = "";
  status.textContent = "Loading…";
  try {
    const [byDay, byModel, byRoute, deployments] = await Promise.all([
      ...["day", "model", "route"].map((group_by) => fetchReport(key, { ...params, group_by })),
      fetchDeployments(key, params)]);
    render(byDay, byModel, byRoute);
    renderDeployments(deployments);
    $("report").hidden = false;
    status.textContent = `${byDay.tenant || "all tenants"} · ${byDay.from} to ${byDay.to} (UTC days)`;
    document.body.dataset.loaded = "true";
  } catch (error) {
    status.className = "error";
    status.textContent = "Could not load the report: " + error.message;
    document.body.dataset.loaded = "error";
  }
}

function start() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const today = new Date().toISOString().slice(0, 10);
  const monthAgo = new Date(Date.now() - 29 * 86400000).toISOString().slice(0, 10);
  $("from").value = fragment.get("from") || monthAgo;
  $("to").value = fragment.get("to") || today;
  $("tenant").value = fragment.get("tenant") || "";
  $("api-key").value = fragment.get("key") || sessionStorage.getItem("tollgate-key") || "";
  if (fragment.has("key")) history.replaceState(null, "", location.pathname);  // keep the key out of history
  $("controls").addEventListener("submit", (event) => { event.preventDefault(); load(); });
  load();
}

start();
