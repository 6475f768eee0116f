// Tollgate dashboard: reads /v1/reports/costs with the key the user typed (or passed in the URL
// fragment, which never reaches a server or its logs) and draws the charts as SVG. No libraries,
// no network beyond the gateway itself: the machines that run it are often offline.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
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

function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

// Horizontal bars: one row per item, label on the left, value on the right.
function horizontalBars(container, items, format) {
  const rowHeight = 24, width = 600, labelWidth = 160, valueWidth = 110;
  const max = Math.max(...items.map((item) => item.value), 0) || 1;
  const svg = svgElement("svg", { viewBox: `0 0 ${width} ${Math.max(items.length, 1) * rowHeight}`, role: "img" });
  items.forEach((item, index) => {
    const y = index * rowHeight;
    const barWidth = ((width - labelWidth - valueWidth) * item.value) / max;
    svg.append(svgElement("text", { x: 0, y: y + 16 }, item.label));
    svg.append(svgElement("rect", { x: labelWidth, y: y + 4, width: Math.max(barWidth, 1), height: 16, fill: "#2f6fde" }));
    svg.append(svgElement("text", { x: labelWidth + barWidth + 6, y: y + 16 }, format(item.value)));
  });
  container.replaceChildren(svg);
}

// Spend per day as bars, with the flagship-only counterfactual as a line over them.
function dayChart(container, days) {
  const width = 900, height = 220, left = 70, bottom = 24, top = 10;
  const max = Math.max(...days.map((d) => Math.max(d.cost_usd, d.flagship_only_usd)), 0) || 1;
  const step = (width - left) / Math.max(days.length, 1);
  const y = (value) => top + (height - top - bottom) * (1 - value / max);
  const svg = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  svg.append(svgElement("text", { x: 0, y: y(max) + 4 }, formatUsd(max)));
  svg.append(svgElement("text", { x: 0, y: y(0) }, formatUsd(0)));
  const points = [];
  days.forEach((day, index) => {
    const x = left + index * step;
    const bar = svgElement("rect", { x: x + step * 0.15, y: y(day.cost_usd), width: step * 0.7,
                                     height: Math.max(y(0) - y(day.cost_usd), 0), fill: "#2f6fde" });
    bar.append(svgElement("title", {}, `${day.group}: ${formatUsd(day.cost_usd)}`));
    svg.append(bar);
    points.push(`${x + step / 2},${y(day.flagship_only_usd)}`);
    if (days.length <= 14 || index % Math.ceil(days.length / 10) === 0) {
      svg.append(svgElement("text", { x: x + step / 2, y: height - 6, "text-anchor": "middle" }, day.group.slice(5)));
    }
  });
  svg.append(svgElement("polyline", { points: points.join(" "), fill: "none", stroke: "#e4572e", "stroke-width": 2 }));
  container.replaceChildren(svg);
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
  const rowHeight = 28, width = 900, labelWidth = 160, valueWidth = 260;
  const max = Math.max(...rows.map((row) => row.bill_usd || 0), 0) || 1;
  const scale = (value) => ((width - labelWidth - valueWidth) * Math.max(value || 0, 0)) / max;
  const svg = svgElement("svg", { viewBox: `0 0 ${width} ${Math.max(rows.length, 1) * rowHeight + 24}`, role: "img" });
  rows.forEach((row, index) => {
    const y = index * rowHeight;
    const used = scale(row.attributed_usd), idle = scale(row.idle_usd);
    svg.append(svgElement("text", { x: 0, y: y + 18 }, row.group));
    svg.append(svgElement("rect", { x: labelWidth, y: y + 5, width: Math.max(used, 1), height: 18, fill: "#2f6fde" }));
    svg.append(svgElement("rect", { x: labelWidth + used, y: y + 5, width: idle, height: 18, fill: "#c9d3e3" }));
    svg.append(svgElement("text", { x: labelWidth + used + idle + 6, y: y + 18 },
      `${formatUsd(row.bill_usd)} bill · ${formatPercent(row.utilization || 0)} used`));
  });
  const legendY = rows.length * rowHeight + 16;
  svg.append(svgElement("rect", { x: labelWidth, y: legendY - 10, width: 12, height: 12, fill: "#2f6fde" }));
  svg.append(svgElement("text", { x: labelWidth + 16, y: legendY }, "attributed to calls"));
  svg.append(svgElement("rect", { x: labelWidth + 160, y: legendY - 10, width: 12, height: 12, fill: "#c9d3e3" }));
  svg.append(svgElement("text", { x: labelWidth + 176, y: legendY }, "idle capacity"));
  container.replaceChildren(svg);
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
  horizontalBars($("chart-models"), byModel.groups.map((g) => ({ label: g.group, value: g.cost_usd })), formatUsd);
  table($("table-models"), byModel.groups, [["Model", "group", String], ["Requests", "requests", formatCount],
    ["Tokens out", "completion_tokens", formatCount], ["Spend", "cost_usd", formatUsd]]);
  horizontalBars($("chart-routes"), byRoute.groups.map((g) => ({ label: g.group, value: g.requests })), formatCount);
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
