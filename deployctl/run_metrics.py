"""deployctl's own run metrics for CloudWatch (pure): how long stages take, how runs end.

Dimensions App / Env (and Stage) let one dashboard compare environments; Outcome is a 0/1
gauge per run so an alarm can fire on repeated failed deploys.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def metric_data(plan: Any, report: Any) -> list[dict[str, Any]]:
    base = [{"Name": "App", "Value": plan.app}, {"Name": "Env", "Value": plan.env}]
    when = datetime.fromtimestamp(report.ended_at or report.started_at, UTC)
    data: list[dict[str, Any]] = [
        {"MetricName": "RunDuration", "Dimensions": base, "Value": float(report.duration_s),
         "Unit": "Seconds", "Timestamp": when},
        {"MetricName": "RunSucceeded", "Dimensions": base, "Value": 1.0 if report.exit_code == 0 else 0.0,
         "Unit": "Count", "Timestamp": when},
    ]
    for stage in report.stages:
        if stage.duration_s is None or stage.status in ("not_run", "skipped"):
            continue
        data.append({"MetricName": "StageDuration", "Dimensions": [*base, {"Name": "Stage", "Value": stage.name}],
                     "Value": float(stage.duration_s), "Unit": "Seconds", "Timestamp": when})
        if stage.name == "deploy":
            # The deploy stage is the rollout: watch until healthy or rolled back.
            data.append({"MetricName": "RolloutDuration", "Dimensions": base, "Value": float(stage.duration_s),
                         "Unit": "Seconds", "Timestamp": when})
    return data
