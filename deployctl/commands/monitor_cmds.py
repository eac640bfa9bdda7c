"""monitor apply, metrics: CloudWatch alarms and dashboards for AI services, and a live read-out."""

from __future__ import annotations

import typer

from deployctl.commands.common import ENV_OPTION, FILE_OPTION, JSON_OPTION, console, load, print_json

monitor_app = typer.Typer(help="Alarms and dashboards (CloudWatch, Grafana) for an environment.",
                          no_args_is_help=True)


@monitor_app.command("apply")
def monitor_apply(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    grafana: str | None = typer.Option(None, "--grafana", help="Also write a Grafana dashboard JSON to this file."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create or update the environment's CloudWatch alarms and dashboard.

    P50/P95/P99 latency, 5xx error rate, tokens per request, an hourly token cap and queue depth,
    with thresholds from deploy.yaml's `monitoring:` section; with `monitoring.endpoints`, also the
    CloudWatch Logs metric filters and per-route error-rate alarms (docs/endpoint-metrics.md).

    \b
    Example:  deployctl monitor apply --env prod --grafana grafana-prod.json
    """
    from deployctl.adapters import aws  # lazy: boto3 stays off --help
    from deployctl.monitoring import apply  # lazy: pydantic and the config stay off --help

    cfg = load(file, env)
    clients = aws.clients(cfg.region)
    with aws.aws_errors("applying monitoring"):
        result = apply(cfg, clients.cloudwatch, clients.elbv2, account_id=aws.account_id(clients),
                       grafana_path=grafana, logs=clients.logs)
    if as_json:
        changes, filters = result.changes, result.filters
        print_json({"schema": "deployctl.monitor-apply/v1", "env": cfg.env_name, "alarms": list(result.alarms),
                    "created": list(changes.created), "updated": list(changes.updated),
                    "unchanged": list(changes.unchanged), "dashboard": result.dashboard,
                    "grafana_file": result.grafana_file,
                    "metric_filters": None if filters is None else {
                        "created": list(filters.created), "updated": list(filters.updated),
                        "unchanged": list(filters.unchanged), "removed": list(filters.removed)}})
        return
    out = console()
    for changes in (c for c in (result.filters, result.changes) if c is not None):
        out.print(f"[green]✓[/] {changes.summary()}")
        for word, names in (("created", changes.created), ("updated", changes.updated),
                            ("unchanged", changes.unchanged), ("removed", changes.removed)):
            if names:
                out.print(f"  {word}: {', '.join(names)}", soft_wrap=True)
    if result.dashboard:
        out.print(f"[green]✓[/] CloudWatch dashboard {result.dashboard}")
    if result.grafana_file:
        out.print(f"[green]✓[/] Grafana dashboard written to {result.grafana_file} (import it; source: CloudWatch)")


def metrics(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    minutes: int = typer.Option(15, "--minutes", help="Window to summarise."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Current P50/P95/P99 latency, error rate, tokens per request and queue depth.

    \b
    Example:  deployctl metrics --env prod --minutes 30
    """
    # lazy: boto3 and the config stay off --help
    from deployctl.adapters import aws
    from deployctl.monitoring import cloudwatch_stats, current, plain_number, require, resolve_facts

    cfg = load(file, env)
    mon = require(cfg)
    clients = aws.clients(cfg.region)
    with aws.aws_errors("reading metrics"):
        facts = resolve_facts(cfg, mon, clients.elbv2)
        rows = current(cfg, mon, facts, cloudwatch_stats(clients.cloudwatch, minutes=minutes))
    if as_json:
        # `route` only on monitoring.endpoints rows (an added key; existing rows keep their shape).
        print_json({"schema": "deployctl.metrics/v1", "env": cfg.env_name, "minutes": minutes, "metrics": [
            {"service": r.service, **({"route": r.route} if r.route else {}), "metric": r.name, "value": r.value,
             "unit": r.unit, "threshold": r.threshold, "breaching": r.breaching} for r in rows]})
        return
    from rich.table import Table  # lazy: rich stays off --help

    table = Table(title=f"{cfg.app} {cfg.env_name}: last {minutes} min", title_justify="left")
    first = "service / route" if any(r.route for r in rows) else "service"
    for col in (first, "metric", "value", "threshold", ""):
        table.add_column(col, justify="right" if col in ("value", "threshold") else "left")
    for r in rows:
        value = "no data" if r.value is None else f"{plain_number(r.value)} {r.unit}"
        limit = "-" if r.threshold is None else f"{plain_number(r.threshold)} {r.unit}"
        table.add_row(r.service or r.route or "-", r.name, value, limit, "[red]over[/]" if r.breaching else "")
    console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(monitor_app, name="monitor")
    app.command()(metrics)
