"""CloudWatch alarms as the rollout reads them, typed: the one place that reads DescribeAlarms
answers for a deploy's deployment alarms.

Shape: https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricAlarm.html and
API_CompositeAlarm.html.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # boto3 only where AWS is called: the views are read on paths that never call it
    from deployctl.adapters.aws import BotoClient


# DescribeAlarms takes at most 100 names a call.
MAX_NAMES = 100

_OPERATORS = {"GreaterThanOrEqualToThreshold": ">=", "GreaterThanThreshold": ">", "LessThanThreshold": "<",
              "LessThanOrEqualToThreshold": "<=", "LessThanLowerOrGreaterThanUpperThreshold": "outside band",
              "GreaterThanUpperThreshold": "> band", "LessThanLowerThreshold": "< band"}


@dataclass(frozen=True)
class AlarmInfo:
    """One CloudWatch alarm as DescribeAlarms shows it: name, StateValue, StateReason and what
    it watches ("AWS/ApplicationELB HTTPCode_Target_5XX_Count Sum > 5")."""

    name: str
    state: str
    reason: str = ""
    metric: str = ""

    @classmethod
    def from_api(cls, alarm: Mapping[str, Any]) -> AlarmInfo:
        """From a `MetricAlarms[]` or `CompositeAlarms[]` entry of DescribeAlarms."""
        if alarm.get("AlarmRule"):
            metric = f"composite: {alarm['AlarmRule']}"
        elif alarm.get("MetricName"):
            metric = f"{alarm.get('Namespace', '')} {alarm['MetricName']}".strip()
            stat = alarm.get("Statistic") or alarm.get("ExtendedStatistic")
            op = _OPERATORS.get(str(alarm.get("ComparisonOperator", "")), "")
            if stat:
                metric += f" {stat}"
            if op and alarm.get("Threshold") is not None:
                metric += f" {op} {float(alarm['Threshold']):g}"
        elif alarm.get("Metrics"):  # metric math: name the expression that is compared
            exprs = [str(m.get("Expression")) for m in alarm["Metrics"] if m.get("ReturnData") and m.get("Expression")]
            metric = f"metric math: {exprs[0]}" if exprs else "metric math"
        else:
            metric = ""
        return cls(str(alarm.get("AlarmName", "?")), str(alarm.get("StateValue", "")),
                   " ".join(str(alarm.get("StateReason") or "").split()), metric)

    def text(self) -> str:
        """`chat-api-5xx (AWS/ApplicationELB HTTPCode_Target_5XX_Count Sum > 5): Threshold Crossed: …`"""
        out = self.name + (f" ({self.metric})" if self.metric else "")
        return out + (f": {self.reason}" if self.reason else "")


def describe_alarms(cloudwatch: BotoClient, names: Sequence[str]) -> list[AlarmInfo]:
    """The metric and composite alarms among `names` (at most MAX_NAMES: one call) that exist."""
    resp = cloudwatch.describe_alarms(AlarmNames=list(names[:MAX_NAMES]))
    return [AlarmInfo.from_api(a) for a in [*resp.get("MetricAlarms", []), *resp.get("CompositeAlarms", [])]]
