"""The Grafana dashboard under deploy/: it loads, and every query names metrics and labels the gateway exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.metrics import MetricWrapperBase

from gateway import metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "tollgate-dashboard.json"



def _exported() -> dict[str, set[str]]:
    """Metric name -> its labels (histograms also ``le``), from the gateway's own definitions."""
    found = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            name = value._name + ("_total" if value._type == "counter" else "")
            found[name] = set(value._labelnames) | ({"le"} if value._type == "histogram" else set())
    return found


def _queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_dashboard_loads_and_covers_what_operators_watch() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["panels"] and {"datasource", "tenant"} <= {v["name"] for v in dashboard["templating"]["list"]}
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for topic in ("requests", "error", "latency", "tokens", "spend", "tenant", "model", "escalation", "cache hit", "upstream failures"):
        assert topic in titles, topic
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_every_query_names_a_metric_and_labels_the_gateway_exports() -> None:
    exported = _exported()
    assert "tollgate_requests_total" in exported and "tollgate_cost_usd_total" in exported
    used = set()
    for expr in _queries():
        for metric, matchers in re.findall(r"(tollgate_[a-z_]+)(\{[^}]*\})?", expr):
            base = re.sub(r"_(bucket|sum|count)$", "", metric) if metric.endswith(("_bucket", "_sum", "_count")) else metric
            assert base in exported, f"{metric} in {expr!r} is not a metric the gateway exports"
            used.add(base)
            for label in re.findall(r"([a-z_]+)\s*[=!]~?", matchers):
                assert label in exported[base], f"{base} has no label {label!r} ({expr!r})"
            if metric.endswith("_bucket"):
                assert "le" in exported[base]
        for group in re.findall(r"by \(([^)]*)\)", expr):
            labels = {label.strip() for label in group.split(",")}
            names = {re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"tollgate_[a-z_]+", expr)}
            assert any(labels <= exported[name] for name in names), f"no metric of {expr!r} has labels {labels}"
    assert len(used) >= 12, sorted(set(exported) - used)


def test_compose_runs_grafana_with_the_dashboard_and_prometheus() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = " ".join(grafana["volumes"])
    assert "deploy/grafana/tollgate-dashboard.json" in mounts and "deploy/grafana/provisioning" in mounts
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090" and "prometheus" in compose["services"]
    provider = yaml.safe_load((provisioning / "dashboards" / "tollgate.yml").read_text())["providers"][0]
    assert any(provider["options"]["path"] in volume for volume in grafana["volumes"])
