"""How bootstrap shows a change set's modifications: property by property, `live → planned`."""

from __future__ import annotations

from deployctl.adapters.cfn_gateway import Change
from deployctl.app.bootstrap import change_lines, with_properties

LIVE = {"Resources": {
    "LogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/x", "RetentionInDays": 30}},
    "Tg": {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
           "Properties": {"HealthCheckPath": "/health", "Matcher": {"HttpCode": "200"}, "Port": 8000}},
}}
PLANNED = {"Resources": {
    "LogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/x", "RetentionInDays": 14}},
    "Tg": {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
           "Properties": {"HealthCheckPath": "/ready", "Matcher": {"HttpCode": "200-299"}, "Port": 8000,
                          "TargetGroupAttributes": [{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}]}},
}}


def test_without_property_values_the_templates_are_compared() -> None:
    changes = [Change("Modify", "LogGroup", "AWS::Logs::LogGroup", "/x", "False"),
               Change("Modify", "Tg", "AWS::ElasticLoadBalancingV2::TargetGroup", "arn:tg", "False"),
               Change("Add", "Queue", "AWS::SQS::Queue")]

    lines = change_lines(with_properties(changes, LIVE, PLANNED))

    assert lines[1] == "      RetentionInDays: 30 → 14"
    assert lines[3:6] == ["      HealthCheckPath: /health → /ready", "      Matcher.HttpCode: 200 → 200-299",
                          '      TargetGroupAttributes: (none) → [{"Key":"deregistration_delay.timeout_seconds",'
                          '"Value":"30"}]']
    assert lines[6].startswith("  + AWS::SQS::Queue") and len(lines) == 7


def test_property_values_from_cloudformation_win_and_strings_equal_numbers() -> None:
    # DescribeChangeSet IncludePropertyValues: every scalar a string; the template's 30 is "30".
    change = Change("Modify", "LogGroup", "AWS::Logs::LogGroup", "/x", "False",
                    before={"LogGroupName": "/x", "RetentionInDays": "30"},
                    after={"LogGroupName": "/x", "RetentionInDays": "7"})

    (shown,) = with_properties([change], LIVE, PLANNED)

    assert [(p.path, p.live, p.planned) for p in shown.properties] == [("RetentionInDays", "30", "7")]
