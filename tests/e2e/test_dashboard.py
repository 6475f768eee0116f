"""The dashboard in a real headless Chromium: the numbers it shows are the reports API's."""

from __future__ import annotations

import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import httpx
import openai
import pytest

from tests.support.browser import rendered_dom, screenshot
from tests.support.stack import ADMIN_KEY, new_tenant_key


class _Values(HTMLParser):
    """Collects data-value attributes by element id and by (table, row group, field)."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self.cells: dict[tuple[str, str, str], str] = {}
        self.texts: dict[str, str] = {}
        self._table, self._row, self._open = "", "", ""
        self.body: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if tag == "table":
            self._table = a.get("id", "")
        if tag == "tr":
            self._row = a.get("data-group", "")
        if "data-value" in a and a.get("id"):
            self.by_id[a["id"]] = a["data-value"]
            self._open = a["id"]
        if tag == "td" and "data-field" in a:
            self.cells[(self._table, self._row, a["data-field"])] = a["data-value"]

    def handle_data(self, data: str) -> None:
        if self._open:
            self.texts[self._open] = data
            self._open = ""


@pytest.fixture(scope="module")
def dashboard_tenant(gateway: str) -> str:
    key = new_tenant_key(gateway, "dash-tenant")
    client = openai.OpenAI(base_url=gateway + "/v1", api_key=key, max_retries=0, timeout=30)
    for model in ("cheap", "cheap", "flagship", "auto"):
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": f"hello {model}"}], max_tokens=8)
    return key


def test_the_dashboard_shows_the_reports_numbers(gateway: str, dashboard_tenant: str, tmp_path: Path) -> None:
    url = f"{gateway}/dashboard#" + urlencode({"key": dashboard_tenant})
    page = _Values()
    page.feed(rendered_dom(url))
    assert page.body.get("data-loaded") == "true"
    headers = {"authorization": f"Bearer {dashboard_tenant}"}
    report = httpx.get(gateway + "/v1/reports/costs", params={"group_by": "model"}, headers=headers).json()
    totals = report["totals"]
    assert float(page.by_id["total-spend"]) == pytest.approx(totals["cost_usd"])
    assert float(page.by_id["total-flagship"]) == pytest.approx(totals["flagship_only_usd"])
    assert float(page.by_id["total-savings"]) == pytest.approx(totals["savings_usd"])
    assert int(page.by_id["total-requests"]) == totals["requests"] == 4
    assert page.texts["total-spend"] == f"${totals['cost_usd']:.6f}"
    for group in report["groups"]:
        assert float(page.cells[("table-models", group["group"], "cost_usd")]) == pytest.approx(group["cost_usd"])
        assert int(page.cells[("table-models", group["group"], "requests")]) == group["requests"]
    routes = httpx.get(gateway + "/v1/reports/costs", params={"group_by": "route"}, headers=headers).json()
    assert {g["group"]: g["requests"] for g in routes["groups"]} == {
        row: int(page.cells[("table-routes", row, "requests")]) for row in ("direct", "router")}
    shot = screenshot(url, tmp_path / "dashboard.png")  # docs/screenshots/dashboard.png is one of these
    assert shot.stat().st_size > 10_000


def test_admins_see_each_deployments_gpu_bill_and_idle_capacity_and_tenants_do_not(
        gateway: str, dashboard_tenant: str, tmp_path: Path) -> None:
    admin_headers = {"authorization": f"Bearer {ADMIN_KEY}"}

    def backend_report() -> dict:
        return httpx.get(gateway + "/v1/reports/costs", params={"group_by": "backend"}, headers=admin_headers).json()

    deadline = time.monotonic() + 30
    while not any((row["bill_usd"] or 0) > 0 for row in backend_report()["groups"]):  # a 10-s slot is metered
        assert time.monotonic() < deadline, backend_report()
        time.sleep(1)
    before = backend_report()
    url = f"{gateway}/dashboard#" + urlencode({"key": ADMIN_KEY})
    page = _Values()
    dom = rendered_dom(url)
    page.feed(dom)
    after = backend_report()
    assert page.body.get("data-loaded") == "true" and 'id="deployments" hidden' not in dom
    rows = {(g, f): float(v) for (t, g, f), v in page.cells.items() if t == "table-deployments" and f != "group" and v != "null"}
    metered = [row for row in before["groups"] if row["bill_usd"] is not None]
    assert metered and {g for g, _ in rows} == {row["group"] for row in metered}
    assert all(rows[(row["group"], "bill_usd")] > 0 for row in metered)
    later = {row["group"]: row for row in after["groups"]}
    for old in metered:
        for field in ("bill_usd", "attributed_usd", "replica_hours"):  # the meter ticks on: between two readings
            new = later[old["group"]]
            assert old[field] - 1e-9 <= rows[(old["group"], field)] <= new[field] + 1e-9, (field, old, new)
    assert screenshot(url, tmp_path / "dashboard-admin.png").stat().st_size > 10_000

    tenant_dom = rendered_dom(f"{gateway}/dashboard#" + urlencode({"key": dashboard_tenant}))
    assert 'data-loaded="true"' in tenant_dom and 'id="deployments" hidden' in tenant_dom


def test_the_dashboard_says_so_when_the_key_is_wrong(gateway: str) -> None:
    page = _Values()
    dom = rendered_dom(f"{gateway}/dashboard#key=sk-tg-nope.wrong")
    page.feed(dom)
    assert page.body.get("data-loaded") == "error" and "invalid or revoked API key" in dom


def test_the_page_is_served_with_a_strict_content_security_policy(gateway: str) -> None:
    response = httpx.get(gateway + "/dashboard")
    assert response.status_code == 200 and "default-src 'self'" in response.headers["content-security-policy"]
    assert "data-value" not in response.text  # the page holds no data: its script fetches it with the key
    for name in ("app.js", "console.js", "style.css", "vendor/chart.umd.min.js"):
        served = httpx.get(gateway + "/dashboard/" + name)
        assert served.status_code == 200 and "default-src 'self'" in served.headers["content-security-policy"]
    assert httpx.get(gateway + "/dashboard/vendor/chart.js.LICENSE.md").status_code == 404  # only the page's files
    assert httpx.get(gateway + "/dashboard/index.html").status_code == 404


def test_an_operator_runs_the_gateway_from_the_console_and_the_key_it_made_works_with_the_sdk(
        gateway: str, dashboard_tenant: str) -> None:
    """Create a tenant and a key limited to one model in the page, call with the key through the
    openai SDK, set the tenant's limits, and revoke the key, all in headless Chromium."""
    from tests.support.cdp import browser_page

    with browser_page() as page:
        page.navigate(f"{gateway}/dashboard#" + urlencode({"key": ADMIN_KEY}))
        page.wait_for("document.body.dataset.console === 'ready' && !document.getElementById('console').hidden")
        # the charts (Chart.js, served by the gateway) draw the reports API's numbers
        admin_headers = {"authorization": f"Bearer {ADMIN_KEY}"}
        by_model = httpx.get(gateway + "/v1/reports/costs", params={"group_by": "model"}, headers=admin_headers).json()
        drawn = page.evaluate("(() => { const c = Chart.getChart(document.querySelector('#chart-models canvas'));"
                              " return [c.data.labels, c.data.datasets[0].data]; })()")
        assert drawn == [[g["group"] for g in by_model["groups"]], [g["cost_usd"] for g in by_model["groups"]]]
        curve = httpx.get(gateway + "/admin/router/curve", headers=admin_headers).json()
        assert curve["routed_calls"] >= 1 and curve["flagship_share"][0] == 1.0  # threshold 0: everything
        assert curve["flagship_share"] == sorted(curve["flagship_share"], reverse=True)
        drawn_curve = page.evaluate("Chart.getChart(document.querySelector('#router-curve canvas')).data.datasets[0].data")
        assert drawn_curve == curve["flagship_share"]
        by_day = httpx.get(gateway + "/v1/reports/costs", params={"group_by": "day"}, headers=admin_headers).json()
        days = page.evaluate("Chart.getChart(document.querySelector('#chart-days canvas')).data.datasets[0].data")
        assert days[-1] == pytest.approx(by_day["groups"][-1]["cost_usd"]) and len(days) == len(by_day["groups"])
        page.evaluate("""document.getElementById('new-tenant-id').value = 'console-co';
                         document.getElementById('new-tenant-name').value = 'Console Co';
                         document.getElementById('new-tenant').requestSubmit()""")
        page.wait_for("!!document.querySelector('#console-tenants tr[data-tenant=\"console-co\"]')")
        page.wait_for("[...document.getElementById('new-key-tenant').options].some(o => o.value === 'console-co')")
        page.evaluate("""document.getElementById('new-key-tenant').value = 'console-co';
                         document.getElementById('new-key-name').value = 'from the console';
                         document.getElementById('new-key-expires').value = '30d';
                         document.querySelector('#new-key-models input[value="cheap"]').checked = true;
                         document.getElementById('new-key-tags').value = 'team:console';
                         document.getElementById('new-key').requestSubmit()""")
        key = page.wait_for("document.getElementById('new-key-secret').dataset.key")
        key_id = key.split("-")[2].split(".")[0]
        row = page.wait_for(f"document.querySelector('#console-keys tr[data-key=\"{key_id}\"]')?.textContent")
        assert "from the console" in row and "cheap" in row and "team:console" in row and "never" not in row

        client = openai.OpenAI(base_url=gateway + "/v1", api_key=key, max_retries=0)
        assert client.chat.completions.create(model="cheap", messages=[{"role": "user", "content": "hi"}],
                                              max_tokens=4).choices
        with pytest.raises(openai.PermissionDeniedError):
            client.chat.completions.create(model="flagship", messages=[{"role": "user", "content": "hi"}], max_tokens=4)

        page.evaluate("""document.getElementById('limits-tenant').value = 'console-co';
                         document.getElementById('limits-tenant').dispatchEvent(new Event('change'))""")
        page.wait_for("document.getElementById('limits-effective').textContent.includes('console-co')")
        page.evaluate("""document.getElementById('limits-rpm').value = '120';
                         document.getElementById('limits').requestSubmit()""")
        page.wait_for("document.getElementById('limits-effective').textContent.includes('120 requests/min')")
        limits = httpx.get(gateway + "/admin/tenants/console-co/limits", headers={"authorization": f"Bearer {ADMIN_KEY}"})
        assert limits.json()["effective"]["tenant"]["rpm"] == 120

        # the router threshold for this tenant, and its moderation policy
        page.evaluate("""document.getElementById('router-tenant').value = 'console-co';
                         document.getElementById('router-threshold').value = '0.3';
                         document.getElementById('router-form').requestSubmit()""")
        page.wait_for("document.getElementById('router-thresholds').textContent.includes('threshold for console-co')")
        thresholds = httpx.get(gateway + "/admin/router/thresholds", headers=admin_headers).json()
        assert thresholds["tenants"]["console-co"] == 0.3
        page.evaluate("document.getElementById('router-clear').click()")  # the tenant still chosen: its override goes
        page.wait_for("!document.getElementById('router-thresholds').textContent.includes('threshold for console-co')")
        assert "console-co" not in httpx.get(gateway + "/admin/router/thresholds", headers=admin_headers).json()["tenants"]
        page.evaluate("""const tenant = document.getElementById('moderation-tenant');
                         tenant.value = 'console-co'; tenant.dispatchEvent(new Event('change'))""")
        page.wait_for("!!document.getElementById('moderation-input-pii')")
        page.evaluate("""document.getElementById('moderation-input-pii').value = 'redact';
                         document.getElementById('moderation-output-secret').value = 'block';
                         document.getElementById('moderation-deny').value = 'project falcon\\n\\nnightshade';
                         document.getElementById('moderation-patterns').value = 'order-id: ORD-[0-9]{8}';
                         document.getElementById('moderation-injection').value = '0.7';
                         document.getElementById('moderation-form').requestSubmit()""")
        page.wait_for("document.getElementById('console-status').textContent.includes('moderation policy of console-co saved')")
        policy = httpx.get(gateway + "/admin/tenants/console-co/moderation", headers=admin_headers).json()
        assert policy["overrides"] == {"input": {"pii": "redact"}, "output": {"secret": "block"},
                                       "deny_list": ["project falcon", "nightshade"],
                                       "patterns": [{"name": "order-id", "pattern": "ORD-[0-9]{8}"}], "injection_threshold": 0.7}
        # read back into the form: what is saved is what it shows, with the policy in force beside it
        page.wait_for("document.getElementById('moderation-input-pii').value === 'redact' && "
                      "document.getElementById('moderation-effective').textContent.includes('order-id')")
        assert "redact / " in page.evaluate("document.getElementById('moderation-actions').textContent")
        page.evaluate("""document.getElementById('moderation-patterns').value = 'no name here';
                         document.getElementById('moderation-form').requestSubmit()""")
        page.wait_for("document.getElementById('console-status').className === 'error'")  # said in the page, nothing sent
        page.evaluate("""document.getElementById('moderation-patterns').value = 'bad: (a+)+';
                         document.getElementById('moderation-form').requestSubmit()""")
        page.wait_for("document.getElementById('console-status').textContent.includes('nests quantifiers')")  # the gateway's 400
        assert httpx.get(gateway + "/admin/tenants/console-co/moderation", headers=admin_headers).json()["overrides"] == \
            policy["overrides"]

        # rotate: a new secret for the same key, shown once; the old one keeps working for the overlap
        page.evaluate(f"""document.querySelector('#console-keys tr[data-key="{key_id}"] button.quiet').click()""")
        rotated = page.wait_for(f"(s => s && s !== '{key}' && s)(document.getElementById('new-key-secret').dataset.key)")
        assert rotated.startswith(f"sk-tg-{key_id}.")
        for secret in (key, rotated):
            assert openai.OpenAI(base_url=gateway + "/v1", api_key=secret, max_retries=0).chat.completions.create(
                model="cheap", messages=[{"role": "user", "content": "hi"}], max_tokens=4).choices

        page.evaluate(f"""const revoke = document.querySelector('#console-keys tr[data-key="{key_id}"] button.danger');
                          revoke.click(); revoke.click()""")  # a destructive action asks twice
        page.wait_for(f"document.querySelector('#console-keys tr[data-key=\"{key_id}\"]').textContent.includes('revoked')")
        page.evaluate("""const disable = document.querySelector('#console-tenants tr[data-tenant="console-co"] button.danger');
                         disable.click(); disable.click()""")
        page.wait_for("document.querySelector('#console-tenants tr[data-tenant=\"console-co\"]').textContent.includes('disabled')")
    time.sleep(1.1)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="cheap", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert next(t for t in httpx.get(gateway + "/admin/tenants", headers=admin_headers).json()["data"]
                if t["id"] == "console-co")["disabled"] is True

    tenant_dom = rendered_dom(f"{gateway}/dashboard#" + urlencode({"key": dashboard_tenant}))
    assert 'data-console="none"' in tenant_dom and 'id="console" hidden' in tenant_dom


def test_an_operator_shadows_compares_promotes_and_rolls_back_a_router_from_the_console(
        gateway: str, tmp_path: Path) -> None:
    """The console's router versions in headless Chromium, for one tenant's own router (the shared
    gateway's other tenants keep the configured one): deploy a trained artifact as a shadow, see it
    decide nothing and be compared on the tenant's calls, promote it, roll back to the global router."""
    import json

    from router.data import Example
    from router.train import fit
    from tests.support.cdp import browser_page
    from tests.support.router_data import synthetic_examples

    contrary = tmp_path / "contrary.json"  # easy prompts to the flagship: it disagrees with the configured router
    fit([Example(e.text, e.strong, e.weak) for e in synthetic_examples(400)], regularization=1.0).save(contrary)
    key = new_tenant_key(gateway, "rollout-co")
    client = openai.OpenAI(base_url=gateway + "/v1", api_key=key, max_retries=0, timeout=30)
    admin_headers = {"authorization": f"Bearer {ADMIN_KEY}"}

    def scored_by() -> str:
        response = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "what is the capital of france"}], max_tokens=2)
        return response.headers["x-tollgate-router-version"]

    def row(table: str) -> str:
        return f"document.querySelector('#{table} tr[data-scope=\"rollout-co\"]')?.textContent || ''"

    configured = scored_by()
    with browser_page() as page:
        page.navigate(f"{gateway}/dashboard#" + urlencode({"key": ADMIN_KEY}))
        page.wait_for("document.body.dataset.console === 'ready' && !document.getElementById('rollout').hidden")
        assert configured in page.evaluate("document.querySelector('#rollout-versions tr[data-scope=\"global\"]').textContent")
        page.wait_for("[...document.getElementById('rollout-tenant').options].some(o => o.value === 'rollout-co')")

        def upload(name: str, text: str) -> None:
            page.evaluate(f"""(() => {{
                const files = new DataTransfer();
                files.items.add(new File([{json.dumps(text)}], {json.dumps(name)}, {{ type: 'application/json' }}));
                document.getElementById('rollout-file').files = files.files;
                document.getElementById('rollout-tenant').value = 'rollout-co';
                document.getElementById('rollout-shadow').checked = true;
                document.getElementById('rollout-form').requestSubmit(); }})()""")

        # what is not a router is refused, and said in the page
        upload("notes.json", "not json")
        page.wait_for("document.getElementById('console-status').textContent.includes('not a router artifact')")
        upload("other.json", json.dumps({"format": "something-else"}))
        page.wait_for("document.getElementById('console-status').className === 'error' && "
                      "document.getElementById('console-status').textContent.includes('failed')")

        upload("contrary.json", contrary.read_text())
        shown = page.wait_for(f"({row('rollout-versions')}).includes('since') && {row('rollout-versions')}")
        state = httpx.get(gateway + "/admin/router/deployments", headers=admin_headers).json()
        candidate = state["tenants"]["rollout-co"]["shadow"]["version"]
        assert candidate != configured and candidate in shown and "the global router" in shown
        assert page.wait_for(row("rollout-compare")).startswith("tenant rollout-co0")  # no call scored yet

        assert {scored_by() for _ in range(4)} == {configured}  # a shadow decides nothing
        page.evaluate("document.getElementById('rollout-refresh').click()")
        compared = page.wait_for(f"({row('rollout-compare')}).startsWith('tenant rollout-co4') && {row('rollout-compare')}")
        api = httpx.get(gateway + "/admin/router/compare", params={"tenant": "rollout-co"}, headers=admin_headers).json()
        live = api["live"]
        assert live["calls"] == 4 and f"{100 * live['agreement']:.1f}%" in compared
        assert f"{100 * live['serving']['flagship_share']:.1f}% → {100 * live['shadow']['flagship_share']:.1f}%" in compared

        page.evaluate("document.querySelector('#rollout-versions tr[data-scope=\"rollout-co\"] button.quiet').click()")
        page.wait_for(f"({row('rollout-versions')}).startsWith('tenant rollout-co{candidate}')")
        assert scored_by() == candidate  # promoted: this tenant's calls are scored by it at once
        assert httpx.get(gateway + "/admin/router/deployments", headers=admin_headers).json()["global"]["shadow"] is None

        page.evaluate("""const back = document.querySelector('#rollout-versions tr[data-scope="rollout-co"] button.danger');
                         back.click(); back.click()""")  # a rollback asks twice
        page.wait_for(f"!({row('rollout-versions')})")  # no router of its own: the global one serves it
        assert scored_by() == configured
