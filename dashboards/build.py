#!/usr/bin/env python3
"""Writes the Grafana dashboards of dashboards/grafana/*.json from the panel
lists below, so every dashboard has the same datasource variable, layout and
units. Run it after changing a panel; `build.py --check` fails when a
committed JSON differs (the observability test runs it).

Every expression may use $kind (the workflow-kind variable),
$__rate_interval and $__range; the observability test substitutes them and
runs each expression against a real Prometheus scraping a real ferry."""

import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}
K = 'kind=~"$kind"'
RI = "$__rate_interval"


def quantiles(metric, by, sel=""):
    return [
        (f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{sel}}}[{RI}])))",
         f"p{int(q * 100)} " + " ".join("{{" + b.strip() + "}}" for b in by.split(",")))
        for q in (0.5, 0.95, 0.99)
    ]


def panel(title, unit, targets, kind="timeseries", description=""):
    return {"title": title, "unit": unit, "targets": targets, "type": kind, "description": description}


OVERVIEW = [
    panel("Submitted by kind", "ops", [
        (f"sum by (kind) (rate(ferry_workflows_submitted_total{{{K}}}[{RI}]))", "{{kind}}")]),
    panel("Finished by kind and outcome", "ops", [
        (f"sum by (kind, outcome) (rate(ferry_workflows_finished_total{{{K}}}[{RI}]))", "{{kind}} {{outcome}}")],
        description="completed, failed, cancelled, rolled_back"),
    panel("Success rate", "percentunit", [
        (f'sum by (kind) (increase(ferry_workflows_finished_total{{{K},outcome="completed"}}[$__range]))'
         f" / sum by (kind) (increase(ferry_workflows_finished_total{{{K}}}[$__range]))", "{{kind}}")],
        kind="stat", description="completed / finished over the dashboard's time range"),
    panel("Active tenants", "short", [("ferry_active_tenants", "tenants")], kind="stat"),
    panel("Workflow duration by kind", "s", quantiles("ferry_workflow_duration_seconds", "kind", K)),
    panel("Step duration by kind and step", "s", quantiles("ferry_step_duration_seconds", "kind, step", K)),
    panel("Queue depth", "short", [("ferry_queue_depth", "waiting"), ("ferry_workflows_running", "running")]),
    panel("Oldest wait in queue", "s", [("ferry_queue_oldest_wait_seconds", "oldest wait")]),
    panel("Open workflows by kind and status", "short", [
        (f"sum by (kind, status) (ferry_workflows_open{{{K}}})", "{{kind}} {{status}}")]),
    panel("Time since last progress (running)", "s", [
        (f"max by (kind) (ferry_workflow_progress_age_seconds{{{K}}})", "{{kind}}")],
        description="the running workflow that progressed least recently; alert FerryWorkflowStalled"),
    panel("Step retries", "ops", [
        (f"sum by (kind, step) (rate(ferry_step_retries_total{{{K}}}[{RI}]))", "{{kind}} {{step}}")]),
    panel("Submitted by opted-in tenant", "ops", [
        (f"topk(10, sum by (tenant, kind) (rate(ferry_tenant_workflows_submitted_total{{{K}}}[{RI}])))",
         "{{tenant}} {{kind}}")],
        description="tenants named in FERRY_METRICS_TENANTS; all others are tenant=\"other\""),
    panel("Failed by opted-in tenant", "ops", [
        (f'topk(10, sum by (tenant, kind) (rate(ferry_tenant_workflows_finished_total{{{K},outcome=~"failed|rolled_back"}}[{RI}])))',
         "{{tenant}} {{kind}}")]),
    panel("HTTP requests by route and status", "reqps", [
        (f"sum by (route, status) (rate(ferry_http_requests_total[{RI}]))", "{{route}} {{status}}")]),
    panel("HTTP latency p99 by route", "s", [
        (f"histogram_quantile(0.99, sum by (le, route) (rate(ferry_http_request_duration_seconds_bucket[{RI}])))",
         "{{route}}")]),
    panel("Build", "short", [("ferry_build_info", "{{version}} {{profile}}")], kind="stat"),
]

DATA = [
    panel("Rows exported by profile", "rowsps", [
        (f"sum by (profile) (rate(ferry_rows_exported_total[{RI}]))", "{{profile}}")]),
    panel("Rows imported by mode", "rowsps", [
        (f"sum by (mode) (rate(ferry_rows_imported_total[{RI}]))", "{{mode}}")]),
    panel("Bytes exported by profile", "Bps", [
        (f"sum by (profile) (rate(ferry_bytes_exported_total[{RI}]))", "{{profile}}")]),
    panel("Bytes imported by mode", "Bps", [
        (f"sum by (mode) (rate(ferry_bytes_imported_total[{RI}]))", "{{mode}}")]),
    panel("Bundle size by profile", "bytes", quantiles("ferry_bundle_size_bytes", "profile")),
    panel("Bundles written by profile", "short", [
        ("sum by (profile) (increase(ferry_bundle_size_bytes_count[$__range]))", "{{profile}}")], kind="stat"),
    panel("Bundles expired by kind", "short", [
        (f"sum by (kind) (increase(ferry_bundles_expired_total[{RI}]))", "{{kind}}")]),
    panel("Timers fired by kind, timer and outcome", "short", [
        (f"sum by (kind, timer, outcome) (increase(ferry_timers_fired_total[{RI}]))", "{{kind}} {{timer}} {{outcome}}")]),
    panel("Overdue timers", "s", [("ferry_timer_overdue_seconds", "oldest overdue")],
          description="alert FerryExpiryTimersOverdue"),
    panel("Downloads", "short", [
        (f"sum by (via) (increase(ferry_bundle_downloads_total[{RI}]))", "{{via}}")]),
]

ENGINE = [
    panel("Event-log commit latency", "s", quantiles("ferry_eventlog_commit_seconds", "instance")),
    panel("Appends by outcome", "ops", [
        (f"sum by (outcome) (rate(ferry_eventlog_appends_total[{RI}]))", "{{outcome}}")]),
    panel("Appends per group-commit sync", "short", [
        (f"sum(rate(ferry_eventlog_batch_size_sum[{RI}])) / sum(rate(ferry_eventlog_batch_size_count[{RI}]))", "mean"),
        (f"histogram_quantile(0.99, sum by (le) (rate(ferry_eventlog_batch_size_bucket[{RI}])))", "p99")]),
    panel("Event-log size", "bytes", [("ferry_eventlog_size_bytes", "size")]),
    panel("Step transitions", "ops", [
        (f"sum by (kind) (rate(ferry_step_duration_seconds_count{{{K}}}[{RI}]))", "{{kind}}")]),
    panel("Recovery at last start", "s", [("ferry_recovery_seconds", "replay time")], kind="stat"),
    panel("Workflows recovered at last start", "short", [("ferry_recovered_workflows", "open")], kind="stat"),
]

# Cluster mode (FERRY_CLUSTER=on) only: proven against a Prometheus scraping
# three nodes by tests/cluster.rs, not by the single-node observability test.
CLUSTER = [
    panel("Live nodes", "short", [("max(ferry_cluster_nodes_live)", "live nodes")], kind="stat",
          description="live nodes as the last heartbeat of each node saw them"),
    panel("Tenant leases by node", "short", [("sum by (node) (ferry_cluster_leases)", "{{node}}")],
          description="tenants each node drives"),
    panel("Takeovers", "ops", [
        (f"sum by (node) (rate(ferry_cluster_takeovers_total[{RI}]))", "{{node}}")],
        description="leases a node took over from a dead or draining node"),
    panel("Fenced appends", "ops", [
        (f'sum by (node) (rate(ferry_eventlog_appends_total{{outcome="fenced"}}[{RI}]))', "{{node}}")],
        description="appends refused because the node had lost the tenant's lease (a zombie)"),
    panel("Nodes scraped up", "short", [('sum(up{job="ferry"})', "up")], kind="stat"),
]

DASHBOARDS = {
    "ferry-overview": ("ferry — overview", "Workflows by kind: throughput, outcomes, latency, queue, retries", OVERVIEW),
    "ferry-data": ("ferry — data", "Rows and bytes exported and imported, bundle sizes, expiries", DATA),
    "ferry-engine": ("ferry — engine", "Event log: commit latency, appends, size; recovery", ENGINE),
    "ferry-cluster": ("ferry — cluster", "Nodes, tenant leases, takeovers and fenced appends", CLUSTER),
}


def dashboard(uid, title, description, panels):
    out = []
    for i, p in enumerate(panels):
        w = 8 if p["type"] == "stat" else 12
        out.append({
            "id": i + 1,
            "type": p["type"],
            "title": p["title"],
            "description": p["description"],
            "datasource": DS,
            "gridPos": {"h": 8, "w": w, "x": (i % 2) * 12, "y": (i // 2) * 8},
            "fieldConfig": {"defaults": {"unit": p["unit"]}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if p["type"] == "timeseries" else {},
            "targets": [
                {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + j)}
                for j, (expr, legend) in enumerate(p["targets"])
            ],
        })
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["ferry"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0},
            {"name": "kind", "label": "Workflow kind", "type": "query", "datasource": DS,
             "query": {"query": "label_values(ferry_workflows_submitted_total, kind)", "refId": "kind"},
             "definition": "label_values(ferry_workflows_submitted_total, kind)",
             "includeAll": True, "multi": True, "allValue": ".*", "current": {}, "refresh": 2, "hide": 0},
        ]},
        "annotations": {"list": []},
        "panels": out,
    }


def main():
    check = "--check" in sys.argv
    stale = []
    for uid, (title, description, panels) in DASHBOARDS.items():
        path = HERE / "grafana" / f"{uid}.json"
        text = json.dumps(dashboard(uid, title, description, panels), indent=2, ensure_ascii=False) + "\n"
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        sys.exit("out of date (run dashboards/build.py): " + ", ".join(stale))


if __name__ == "__main__":
    main()
