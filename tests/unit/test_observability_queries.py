"""Every metric named in the alert rules and the Grafana dashboard is one the code exports.

Exported names come from the registries the code fills (prometheus-client's default registry after
importing the metric modules, and faust's sensor metrics created with the fixed "faust" prefix), so
a renamed metric breaks this test, not a dashboard nobody looks at. The helpers are shared with
tests/integration/test_prometheus_scrape.py, which evaluates the same expressions on Prometheus."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "blogpulse.json"

# Modules that define blogpulse_* metrics (imported for their registrations).
METRIC_MODULES = ("streams.metrics", "streams.observability", "sinks.metrics")
# Series Prometheus itself writes for every scrape target.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "unknown": ("",),
}


def alert_expressions() -> list[tuple[str, str]]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [
        (r.get("alert") or r.get("record"), r["expr"])
        for group in rules["groups"]
        for r in group["rules"]
    ]


def dashboard_expressions() -> list[tuple[str, str]]:
    def walk(panels):
        for p in panels:
            yield from walk(p.get("panels", []))
            for t in p.get("targets", []):
                yield f"{p['title']} [{t.get('refId')}]", t["expr"]

    return list(walk(json.loads(DASHBOARD.read_text())["panels"]))


def _family_names(registry) -> set[str]:
    names = set()
    for family in registry.collect():
        names.update(family.name + s for s in _SUFFIXES.get(family.type, ("",)))
    return names


def exported_metric_names() -> set[str]:
    """Every series name the worker's /metrics can carry."""
    from prometheus_client import REGISTRY

    for module in METRIC_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise  # the module exists but is broken: say so
    return _family_names(REGISTRY) | PROMETHEUS_SERIES


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:]|\s*\()")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "atan2",
}


def metric_names_in(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (identifiers that are not functions, keywords,
    label names in by()/matchers, strings or durations)."""
    text = _STRINGS.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _LABEL_LISTS.sub(" ", text)
    return {m for m in _IDENT.findall(text) if m.lower() not in _KEYWORDS}


def test_extractor_finds_metric_names_and_nothing_else():
    expr = (
        'sum by (topic, partition) (rate(foo_total{job="a",x=~"b.c"}[5m] offset 1h)) '
        "/ on (topic) group_left bar_seconds_bucket > 0.5 and histogram_quantile(0.9, "
        "sum without (le) (baz)) or vector(0)"
    )
    assert metric_names_in(expr) == {"foo_total", "bar_seconds_bucket", "baz"}


def test_exported_names_include_the_product_metrics():
    names = exported_metric_names()
    for name in (
        "blogpulse_rebalances_total",
        "blogpulse_events_consumed_total",
        "blogpulse_consumer_lag",
        "blogpulse_end_to_end_latency_seconds_bucket",
        "blogpulse_top_post_events",
    ):
        assert name in names


@pytest.mark.parametrize(
    "source,expressions",
    [
        ("alerts.yml", alert_expressions()),
        ("dashboard", dashboard_expressions()),
    ],
    ids=["alerts", "dashboard"],
)
def test_every_query_uses_exported_metrics(source, expressions):
    assert expressions, f"no expressions found in {source}"
    exported = exported_metric_names()
    unknown = {
        f"{where}: {name}"
        for where, expr in expressions
        for name in metric_names_in(expr)
        if name not in exported
    }
    assert not unknown, f"{source} queries metrics no code exports: {sorted(unknown)}"


def test_every_query_selects_some_metric():
    for where, expr in alert_expressions() + dashboard_expressions():
        assert metric_names_in(expr), f"{where}: no metric in {expr!r}"


def test_dashboard_panels_use_the_provisioned_datasource():
    datasource = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    uid = datasource["datasources"][0]["uid"]
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in dashboard["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == uid, p["title"]
    provider = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/dashboards/blogpulse.yml").read_text()
    )
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == provider["providers"][0]["options"]["path"]


def test_no_query_or_metric_has_a_per_post_or_per_person_label():
    from prometheus_client import REGISTRY

    exported_metric_names()  # imports the metric modules
    forbidden = {
        "post",
        "post_id",
        "post_key",
        "site",
        "author",
        "author_key",
        "comment_id",
        "email",
        "ip",
        "user",
        "person",
    }
    for family in REGISTRY.collect():
        if family.name.startswith("blogpulse_"):
            for sample in family.samples:
                assert not forbidden & set(sample.labels), (family.name, sample.labels)
    for where, expr in alert_expressions() + dashboard_expressions():
        for label in forbidden:
            assert not re.search(rf"\b{label}\s*=", expr), f"{where}: per-{label} label"
