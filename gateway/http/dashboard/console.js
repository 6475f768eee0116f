// Tollgate console: for admin keys, the admin API as a page (tenants, keys, limits and budgets,
// router thresholds and versions, moderation). It holds no state of its own: every action is one admin API
// call with the key typed above, and every table is read back from the API after a change. A new
// key's secret is shown once, in the page only; nothing is stored in the browser but the admin key
// (session storage, as the cost report does).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const key = () => $("api-key").value.trim();

  async function api(method, path, body) {
    const response = await fetch(path, {
      method,
      headers: { authorization: "Bearer " + key(), ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const payload = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw Object.assign(new Error((payload.error && payload.error.message) || `HTTP ${response.status}`), { status: response.status });
    }
    return payload;
  }

  function say(message, failed) {
    const status = $("console-status");
    status.textContent = message;
    status.className = failed ? "error" : "";
  }

  async function act(label, work) {
    try {
      await work();
      say(label);
      await refresh();
    } catch (error) {
      say(`${label} failed: ${error.message}`, true);
    }
  }

  function cell(text) {
    return Object.assign(document.createElement("td"), { textContent: text });
  }

  function button(text, className, onClick) {
    const element = Object.assign(document.createElement("button"), { type: "button", textContent: text, className });
    element.addEventListener("click", onClick);
    return element;
  }

  // A destructive action asks twice, in the page (no dialogs: they block scripts and tests alike).
  function confirmed(text, onConfirm) {
    const element = button(text, "danger", () => {
      if (element.dataset.armed) return onConfirm();
      element.dataset.armed = "1";
      element.textContent = "Sure? " + text;
    });
    return element;
  }

  function headed(table, titles, rows) {
    const head = document.createElement("tr");
    for (const title of titles) head.append(Object.assign(document.createElement("th"), { textContent: title }));
    table.replaceChildren(head, ...rows);
  }

  function fillSelect(select, values, keep) {
    const previous = select.value;
    select.replaceChildren(...keep, ...values.map((v) => Object.assign(document.createElement("option"), { value: v, textContent: v })));
    if ([...select.options].some((o) => o.value === previous)) select.value = previous;
  }

  const when = (epoch) => (epoch ? new Date(epoch * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC" : "never");
  const usd = (value) => "$" + Number(value || 0).toFixed(Math.abs(value) >= 1 ? 2 : 6);

  async function renderTenants(tenants, spend) {
    const byTenant = Object.fromEntries(spend.groups.map((g) => [g.group, g]));
    const rows = [...tenants].sort((a, b) => ((byTenant[b.id] || {}).cost_usd || 0) - ((byTenant[a.id] || {}).cost_usd || 0))
      .map((tenant) => {
        const tr = document.createElement("tr");
        tr.dataset.tenant = tenant.id;
        const used = byTenant[tenant.id] || { cost_usd: 0, requests: 0 };
        tr.append(cell(tenant.id), cell(tenant.name), cell(usd(used.cost_usd)), cell(String(used.requests)),
                  cell(tenant.disabled ? "disabled" : "active"));
        const actions = document.createElement("td");
        if (!tenant.disabled) {
          actions.append(confirmed("Disable", () => act(`tenant ${tenant.id} disabled`, () => api("DELETE", `/admin/tenants/${tenant.id}`))));
        }
        tr.append(actions);
        return tr;
      });
    headed($("console-tenants"), ["Tenant", "Name", "Spend", "Requests", "Status", ""], rows);
    const active = tenants.filter((t) => !t.disabled).map((t) => t.id);
    for (const id of ["new-key-tenant", "limits-tenant", "moderation-tenant"]) fillSelect($(id), active, []);
    const global = Object.assign(document.createElement("option"), { value: "", textContent: "(global)" });
    fillSelect($("router-tenant"), active, [global]);
    fillSelect($("rollout-tenant"), active, [global.cloneNode(true)]);
  }

  function renderKeys(keys) {
    const rows = keys.map((k) => {
      const tr = document.createElement("tr");
      tr.dataset.key = k.id;
      tr.append(cell(k.id), cell(k.tenant || "(admin)"), cell(k.name), cell(when(k.expires)),
                cell((k.models || ["all"]).join(", ")), cell((k.tags || []).join(", ")),
                cell(k.revoked ? "revoked" : k.expires && k.expires * 1000 < Date.now() ? "expired" : "active"));
      const actions = document.createElement("td");
      if (!k.revoked) {
        actions.append(
          button("Rotate", "quiet", () => act(`key ${k.id} rotated`, async () => showSecret(await api("POST", `/admin/keys/${k.id}/rotate`, { overlap: "24h" }),
                                                                                              "the old secret works for 24 h more"))),
          " ",
          confirmed("Revoke", () => act(`key ${k.id} revoked`, () => api("DELETE", `/admin/keys/${k.id}`))));
      }
      tr.append(actions);
      return tr;
    });
    headed($("console-keys"), ["Key", "Tenant", "Name", "Expires", "Models", "Tags", "Status", ""], rows);
  }

  function showSecret(created, note) {
    const box = $("new-key-secret");
    box.hidden = false;
    box.textContent = `${created.key}  (key ${created.id}: shown once, copy it now; ${note})`;
    box.dataset.key = created.key;
  }

  function renderModels(models) {
    const box = $("new-key-models");
    const ticked = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
    const legend = box.querySelector("legend");
    const labels = models.map((name) => {
      const input = Object.assign(document.createElement("input"), { type: "checkbox", value: name, checked: ticked.has(name) });
      const label = document.createElement("label");
      label.append(input, name);
      return label;
    });
    box.replaceChildren(legend, ...labels);
  }

  function renderThresholds(shown) {
    const fmt = (v) => (v === null || v === undefined ? "-" : String(v));
    const rows = ["threshold", "escalation"].map((name) => {
      const tr = document.createElement("tr");
      tr.append(cell(name), cell(fmt(shown[name])), cell(fmt(shown.configured[name])), cell(fmt(shown.overrides[name])));
      return tr;
    });
    for (const [tenant, value] of Object.entries(shown.tenants)) {
      const tr = document.createElement("tr");
      tr.append(cell(`threshold for ${tenant}`), cell(fmt(value)), cell("-"), cell(fmt(value)));
      rows.push(tr);
    }
    headed($("router-thresholds"), ["Setting", "In force", "Configured", "Live override"], rows);
  }

  // Share of recent routed calls each global threshold would send to the flagship, and of cascade
  // calls each escalation threshold would escalate; the values in force marked on their curves.
  function renderCurve(curve, shown) {
    const percent = (v) => `${Math.round(v * 100)}%`;
    // the grid point nearest the value in force (the grid runs 0 to 1 in steps of 0.05)
    const marks = (shares, threshold) => {
      const index = threshold === null || threshold === undefined ? -1 : Math.round(threshold * 20);
      return shares.map((share, i) => (i === index ? share : null));
    };
    const container = $("router-curve");
    chartIn(container, {  // app.js's: one canvas per chart, replaced when drawn again
      type: "line",
      height: 220,
      data: {
        labels: curve.thresholds.map((t) => t.toFixed(2)),
        datasets: [
          { label: `to the flagship (${curve.routed_calls} routed calls)`, data: curve.flagship_share, borderColor: "#2f6fde",
            backgroundColor: "#2f6fde", pointRadius: 0 },
          { label: `escalated (${curve.cascade_calls} cascade calls)`, data: curve.escalation_share, borderColor: "#e4572e",
            backgroundColor: "#e4572e", pointRadius: 0 },
          { label: "in force", data: marks(curve.flagship_share, shown.threshold), showLine: false, pointRadius: 6,
            borderColor: "#1d2433", backgroundColor: "#1d2433" },
          { label: "escalation in force", data: marks(curve.escalation_share, shown.escalation), showLine: false,
            pointRadius: 6, pointStyle: "rectRot", borderColor: "#1d2433", backgroundColor: "#1d2433" },
        ],
      },
      options: { scales: { x: { title: { display: true, text: "threshold" } },
                           y: { min: 0, max: 1, title: { display: true, text: "share of calls" }, ticks: { callback: percent } } },
                 plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${percent(c.parsed.y)}` } } } },
    });
  }

  async function loadLimits() {
    const tenant = $("limits-tenant").value;
    if (!tenant) return;
    const limits = await api("GET", `/admin/tenants/${tenant}/limits`);
    const overrides = limits.overrides.tenant;
    $("limits-rpm").value = overrides.rpm ?? "";
    $("limits-tpm").value = overrides.tpm ?? "";
    $("limits-daily").value = overrides.daily_usd ?? "";
    $("limits-monthly").value = overrides.monthly_usd ?? "";
    const e = limits.effective.tenant;
    const show = (v) => (v === null ? "none" : String(v));
    $("limits-effective").textContent = `in force for ${tenant}: ${show(e.rpm)} requests/min, ${show(e.tpm)} tokens/min, ` +
      `${show(e.daily_usd)} USD/day, ${show(e.monthly_usd)} USD/month`;
  }

  // Moderation: an action per category for prompts and for answers ("default": no override), the
  // tenant's deny list and patterns, and the injection threshold; the policy in force beside them.
  const CATEGORIES = ["pii", "secret", "injection", "custom", "classifier", "external"];
  const ACTIONS = ["allow", "flag", "redact", "block"];

  function actionSelect(id, chosen) {
    const select = Object.assign(document.createElement("select"), { id });
    select.append(...["", ...ACTIONS].map((a) => Object.assign(document.createElement("option"), { value: a, textContent: a || "default" })));
    select.value = chosen || "";
    return select;
  }

  async function loadModeration() {
    const tenant = $("moderation-tenant").value;
    if (!tenant) return;
    const policy = await api("GET", `/admin/tenants/${tenant}/moderation`);
    const overrides = policy.overrides;
    const effective = policy.effective;
    const rows = CATEGORIES.map((category) => {
      const tr = document.createElement("tr");
      const inForce = effective ? `${effective.input[category]} / ${effective.output[category]}` : "-";
      const select = (direction) => {
        const td = document.createElement("td");
        td.append(actionSelect(`moderation-${direction}-${category}`, (overrides[direction] || {})[category]));
        return td;
      };
      tr.append(cell(category), select("input"), select("output"), cell(inForce));
      return tr;
    });
    headed($("moderation-actions"), ["Category", "Prompts", "Answers", "In force (prompts / answers)"], rows);
    $("moderation-deny").value = (overrides.deny_list || []).join("\n");
    $("moderation-patterns").value = (overrides.patterns || []).map((p) => `${p.name || "custom"}: ${p.pattern}`).join("\n");
    $("moderation-injection").value = overrides.injection_threshold ?? "";
    $("moderation-effective").textContent = effective
      ? `in force: injection threshold ${effective.injection_threshold}; deny list: ${effective.deny_list.length} entries; ` +
        `patterns: ${effective.patterns.join(", ") || "none"}`
      : "moderation is off in this gateway's config";
  }

  // The overrides the form describes; a pattern line without "name:" is refused here, before anything is sent.
  function moderationOverrides() {
    const overrides = {};
    for (const direction of ["input", "output"]) {
      const chosen = Object.fromEntries(CATEGORIES.map((c) => [c, $(`moderation-${direction}-${c}`).value]).filter(([, a]) => a));
      if (Object.keys(chosen).length) overrides[direction] = chosen;
    }
    const lines = (id) => $(id).value.split("\n").map((line) => line.trim()).filter(Boolean);
    const deny = lines("moderation-deny");
    if (deny.length) overrides.deny_list = deny;
    const patterns = lines("moderation-patterns").map((line, i) => {
      const colon = line.indexOf(":");
      if (colon < 1) throw new Error(`pattern line ${i + 1} needs a name first: "name: regular expression"`);
      return { name: line.slice(0, colon).trim(), pattern: line.slice(colon + 1).trim() };
    });
    if (patterns.length) overrides.patterns = patterns;
    const threshold = number("moderation-injection");
    if (threshold !== null) overrides.injection_threshold = threshold;
    return overrides;
  }

  // Router versions: which router serves and which shadows, globally and per tenant, what a rollback
  // returns to, and the shadow against the serving router (the CLI's `router deployments` and
  // `router compare`). Hidden when the gateway has no router.
  const percent = (v) => (v === null || v === undefined ? "-" : `${(100 * v).toFixed(1)}%`);
  const versionText = (shown) => [shown.version, shown.trained_at && "trained " + shown.trained_at.slice(0, 16).replace("T", " "),
                                  shown.examples && `${shown.examples} examples`].filter(Boolean).join(" · ");

  const COMPARED = { per_tenant: 5000, labels: 2000 };  // read on every refresh: less than the CLI's defaults

  function scopesOf(state) {
    return [["", "global", state.global], ...Object.entries(state.tenants).map(([tenant, scope]) => [tenant, `tenant ${tenant}`, scope])];
  }

  function renderVersions(state) {
    const configured = state.configured && state.configured.version;
    const rows = scopesOf(state).map(([tenant, name, scope]) => {
      const tr = document.createElement("tr");
      tr.dataset.scope = tenant || "global";
      const fallback = tenant ? "the global router" : "the configured router";
      const serving = scope.serving
        ? versionText(scope.serving) + (!tenant && scope.serving.version === configured ? " (configured)" : "") : fallback;
      const back = scope.history.length ? (scope.history[0] || fallback) : "-";
      tr.append(cell(name), cell(serving), cell(scope.shadow ? `${versionText(scope.shadow)} · since ${when(scope.shadow_since)}` : "-"),
                cell(back));
      const actions = document.createElement("td");
      const body = tenant ? { tenant } : {};
      if (scope.shadow) {
        actions.append(button("Promote", "quiet", () => act(`shadow promoted (${name})`, () => api("POST", "/admin/router/promote", body))),
                       " ", confirmed("Discard", () => act(`shadow discarded (${name})`, () => api("POST", "/admin/router/discard", body))));
      }
      if (scope.history.length) {
        actions.append(" ", confirmed("Roll back", () => act(`rolled back (${name})`, () => api("POST", "/admin/router/rollback", body))));
      }
      tr.append(actions);
      return tr;
    });
    headed($("rollout-versions"), ["Scope", "Serving", "Shadow", "Rollback returns to", ""], rows);
  }

  async function renderComparisons(state) {
    const shadowed = scopesOf(state).filter(([, , scope]) => scope.shadow);
    const results = await Promise.all(shadowed.map(([tenant]) => api("GET", "/admin/router/compare?" + new URLSearchParams({ ...COMPARED, ...(tenant ? { tenant } : {}) }))
      .catch((error) => ({ error: error.message }))));
    const both = (a, b, show) => `${show(a)} → ${show(b)}`;
    const notes = [];
    const rows = shadowed.map(([tenant, name], i) => {
      const tr = document.createElement("tr");
      tr.dataset.scope = tenant || "global";
      const result = results[i];
      if (result.error) {
        tr.append(cell(name), cell(result.error));
        return tr;
      }
      const live = result.live;
      const labels = result.cascade_labels;
      const apgr = (role) => (labels[role] ? labels[role].apgr.toFixed(3) : "-");
      const cpt = (role) => (labels[role] ? `${labels[role].cpt50.toFixed(1)}%` : "-");
      tr.append(cell(name), cell(String(live.calls)), cell(percent(live.agreement)));
      if (live.calls) {
        tr.append(cell(both(live.serving.flagship_share, live.shadow.flagship_share, percent)),
                  cell(both(live.serving.cost_usd, live.shadow.cost_usd, usd)));
        if (live.shadow.estimated_calls) notes.push(`${name}: ${live.shadow.estimated_calls} calls the shadow would keep on ${result.cheap} are priced at its mean cost per token`);
      } else {
        tr.append(cell("-"), cell("-"));
        notes.push(`${name}: no call scored by the shadow yet (it scores model="auto" and router:<t> calls)`);
      }
      tr.append(cell(`${labels.labels} (${labels.escalated} escalated)`), cell(`${apgr("serving")} → ${apgr("shadow")}`),
                cell(`${cpt("serving")} → ${cpt("shadow")}`));
      if (!labels.serving) notes.push(`${name}: APGR needs cascade labels with both outcomes, kept and escalated`);
      return tr;
    });
    headed($("rollout-compare"), ["Scope", "Shadowed calls", "Agreement", "To the flagship (serving → shadow)",
                                  "Cost (serving → shadow)", "Cascade labels", "APGR", "CPT(50%)"], rows);
    $("rollout-note").textContent = shadowed.length ? notes.join("; ") : "No router is shadowing: deploy one as a shadow to compare it.";
  }

  async function loadRollout() {
    let state;
    try {
      state = await api("GET", "/admin/router/deployments");
    } catch (error) {
      if (error.status !== 404) throw error;
      $("rollout").hidden = true;  // no router in this gateway's config
      return;
    }
    $("rollout").hidden = false;
    renderVersions(state);
    await renderComparisons(state);
  }

  async function refresh() {
    const period = { from: $("from").value, to: $("to").value, group_by: "tenant" };
    const [tenants, keys, spend, models, thresholds, curve] = await Promise.all([
      api("GET", "/admin/tenants"), api("GET", "/admin/keys"), api("GET", "/v1/reports/costs?" + new URLSearchParams(period)),
      api("GET", "/v1/models"), api("GET", "/admin/router/thresholds"), api("GET", "/admin/router/curve")]);
    await renderTenants(tenants.data, spend);
    renderKeys(keys.data);
    renderModels(models.data.map((m) => m.id));
    renderThresholds(thresholds);
    renderCurve(curve, thresholds);
    await Promise.all([loadLimits(), loadModeration(), loadRollout()]);
  }

  function number(id) {
    const text = $(id).value.trim();
    return text === "" ? null : Number(text);
  }

  function wire() {
    $("new-tenant").addEventListener("submit", (event) => {
      event.preventDefault();
      const id = $("new-tenant-id").value.trim();
      act(`tenant ${id} created`, () => api("POST", "/admin/tenants", { id, name: $("new-tenant-name").value.trim() || null }));
    });
    $("new-key").addEventListener("submit", (event) => {
      event.preventDefault();
      const models = [...$("new-key-models").querySelectorAll("input:checked")].map((i) => i.value);
      const tags = $("new-key-tags").value.split(",").map((t) => t.trim()).filter(Boolean);
      const body = { tenant: $("new-key-tenant").value, name: $("new-key-name").value.trim(), tags };
      if (models.length) body.models = models;
      if ($("new-key-expires").value) body.expires_in = $("new-key-expires").value;
      act("key created", async () => showSecret(await api("POST", "/admin/keys", body), "it is stored only as a hash"));
    });
    $("limits-tenant").addEventListener("change", () => loadLimits().catch((e) => say(e.message, true)));
    $("limits").addEventListener("submit", (event) => {
      event.preventDefault();
      const tenant = $("limits-tenant").value;
      const body = { tenant: { rpm: number("limits-rpm"), tpm: number("limits-tpm"), daily_usd: number("limits-daily"),
                               monthly_usd: number("limits-monthly") } };
      act(`limits of ${tenant} saved`, () => api("PUT", `/admin/tenants/${tenant}/limits`, body));
    });
    $("router-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const tenant = $("router-tenant").value;
      const threshold = number("router-threshold");
      const body = tenant ? { tenants: { [tenant]: threshold } } : {};
      if (!tenant && threshold !== null) body.threshold = threshold;
      if (number("router-escalation") !== null) body.escalation = number("router-escalation");
      act("router thresholds saved", () => api("PUT", "/admin/router/thresholds", body));
    });
    $("router-clear").addEventListener("click", () => {
      const tenant = $("router-tenant").value;
      const body = tenant ? { tenants: { [tenant]: null } } : { threshold: null, escalation: null };
      act("router overrides cleared", () => api("PUT", "/admin/router/thresholds", body));
    });
    $("rollout-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const file = $("rollout-file").files[0];
      const tenant = $("rollout-tenant").value;
      const shadow = $("rollout-shadow").checked;
      let artifact;
      try {
        artifact = JSON.parse(await file.text());
      } catch (error) {
        say(`${file.name} is not a router artifact (JSON): ${error.message}`, true);
        return;
      }
      const body = { artifact, shadow, ...(tenant ? { tenant } : {}) };
      await act(`${file.name} ${shadow ? "shadows" : "serves"} (${tenant ? "tenant " + tenant : "global"})`,
                () => api("POST", "/admin/router/deploy", body));
      $("rollout-file").value = "";
    });
    $("rollout-refresh").addEventListener("click", () => loadRollout().then(() => say("router versions read again"),
                                                                          (e) => say(e.message, true)));
    $("moderation-tenant").addEventListener("change", () => loadModeration().catch((e) => say(e.message, true)));
    $("moderation-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const tenant = $("moderation-tenant").value;
      let body;
      try {
        body = moderationOverrides();
      } catch (error) {
        say(error.message, true);
        return;
      }
      act(`moderation policy of ${tenant} saved`, () => api("PUT", `/admin/tenants/${tenant}/moderation`, body));
    });
  }

  // Shown when the report has loaded with an admin key (a tenant key gets 403 from /admin).
  async function start() {
    wire();
    const observer = new MutationObserver(async () => {
      if (document.body.dataset.loaded !== "true") return;
      try {
        await refresh();
        $("console").hidden = false;
        document.body.dataset.console = "ready";
      } catch (error) {
        $("console").hidden = true;
        document.body.dataset.console = "none";
      }
    });
    observer.observe(document.body, { attributes: true, attributeFilter: ["data-loaded"] });
  }

  start();
})();
