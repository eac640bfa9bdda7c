"""CloudFormation (and the few account lookups `deployctl bootstrap` needs), typed.

Raw response dicts stay in this module: callers get StackView, Change and StackEvent.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deployctl.adapters.aws import AwsClients, ClientError, error_code, error_message, is_not_found

POLL_S = 2.0
# Terminal stack states: CloudFormation's own list (DescribeStacks, StackStatus).
GOOD = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE", "IMPORT_COMPLETE"})
BAD = frozenset({"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "UPDATE_ROLLBACK_COMPLETE",
                 "UPDATE_ROLLBACK_FAILED", "DELETE_FAILED", "UPDATE_FAILED", "IMPORT_ROLLBACK_COMPLETE",
                 "IMPORT_ROLLBACK_FAILED"})
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")


@dataclass(frozen=True)
class StackView:
    name: str
    status: str
    outputs: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    protected: bool = False
    resources: frozenset[str] = frozenset()  # logical ids
    tags: dict[str, str] = field(default_factory=dict)
    stack_id: str = ""

    @property
    def usable(self) -> bool:
        """Can take a change set (ROLLBACK_COMPLETE after a failed create must be deleted first)."""
        return self.status in GOOD - {"DELETE_COMPLETE"} or self.status in (
            "UPDATE_ROLLBACK_COMPLETE", "IMPORT_ROLLBACK_COMPLETE")


@dataclass(frozen=True)
class PropertyChange:
    """One property of a modified resource: `live` is what the stack has, `planned` the new."""

    path: str  # "RetentionInDays", "Tags", "VpcConfig.SubnetIds"
    live: Any
    planned: Any


@dataclass(frozen=True)
class Change:
    action: str  # Add | Modify | Remove | Import | Dynamic
    logical_id: str
    resource_type: str
    physical_id: str = ""
    replacement: str = ""  # True | False | Conditional (Modify only)
    # The resource's properties before and after (DescribeChangeSet IncludePropertyValues), when
    # CloudFormation gives them; else None and the caller compares the templates.
    before: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    after: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    properties: tuple[PropertyChange, ...] = ()


@dataclass(frozen=True)
class StackEvent:
    event_id: str
    at: datetime
    logical_id: str
    resource_type: str
    status: str
    reason: str = ""

    @property
    def failed(self) -> bool:
        return self.status.endswith("_FAILED")


def describe(c: AwsClients, name: str, *, resources: bool = True) -> StackView | None:
    """The stack, or None. `resources=False` reads DescribeStacks only (all `from_stack` needs,
    and all the CI role may do)."""
    cf = c.client("cloudformation")
    try:
        resp = cf.describe_stacks(StackName=name)
    except ClientError as exc:
        if error_code(exc) == "ValidationError" and "does not exist" in error_message(exc):
            return None
        raise
    stacks = resp.get("Stacks") or []
    if not stacks or stacks[0].get("StackStatus") == "DELETE_COMPLETE":
        return None
    raw = stacks[0]
    logical = _logical_ids(cf, name) if resources else frozenset()
    return StackView(
        name=name, status=raw["StackStatus"],
        outputs={o["OutputKey"]: str(o.get("OutputValue", "")) for o in raw.get("Outputs", [])},
        parameters={p["ParameterKey"]: str(p.get("ParameterValue", "")) for p in raw.get("Parameters", [])},
        protected=bool(raw.get("EnableTerminationProtection")), resources=logical,
        tags={t["Key"]: str(t.get("Value", "")) for t in raw.get("Tags", [])}, stack_id=str(raw.get("StackId", "")))


def _logical_ids(cf: Any, name: str) -> frozenset[str]:
    try:
        listed = cf.describe_stack_resources(StackName=name).get("StackResources", [])
    except ClientError:
        return frozenset()  # a stack in a state with no resources
    return frozenset(r["LogicalResourceId"] for r in listed if r.get("LogicalResourceId"))


def create_change_set(c: AwsClients, name: str, template: Mapping[str, Any], parameters: Mapping[str, str],
                      tags: Mapping[str, str], *, create: bool) -> str:
    cf = c.client("cloudformation")
    resp = cf.create_change_set(
        StackName=name, ChangeSetName=f"deployctl-{uuid.uuid4().hex[:12]}",
        ChangeSetType="CREATE" if create else "UPDATE",
        TemplateBody=json.dumps(template, separators=(",", ":")),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    return str(resp["Id"])


def wait_change_set(c: AwsClients, change_set: str, *, timeout: float = 300,
                    sleep: Callable[[float], None] = time.sleep) -> tuple[list[Change] | None, str]:
    """(changes, "") once ready; (None, reason) when it failed; ([], reason) when there is
    nothing to change (CloudFormation fails such a change set)."""
    cf = c.client("cloudformation")
    deadline = time.monotonic() + timeout
    while True:
        resp = cf.describe_change_set(ChangeSetName=change_set, IncludePropertyValues=True)
        status, reason = resp.get("Status", ""), resp.get("StatusReason", "")
        if status == "CREATE_COMPLETE":
            raw = list(resp.get("Changes", []))
            while resp.get("NextToken"):
                resp = cf.describe_change_set(ChangeSetName=change_set, IncludePropertyValues=True,
                                              NextToken=resp["NextToken"])
                raw += resp.get("Changes", [])
            return [_change(ch) for ch in raw], ""
        if status == "FAILED":
            if any(text in reason for text in NO_CHANGES):
                return [], reason
            return None, reason
        if time.monotonic() > deadline:
            return None, f"the change set was not ready within {int(timeout)}s (status {status})"
        sleep(POLL_S / 2)


def _change(raw: Mapping[str, Any]) -> Change:
    rc = raw.get("ResourceChange", {})
    return Change(action=rc.get("Action", "?"), logical_id=rc.get("LogicalResourceId", "?"),
                  resource_type=rc.get("ResourceType", "?"), physical_id=rc.get("PhysicalResourceId", "") or "",
                  replacement=rc.get("Replacement", "") or "",
                  before=_context(rc.get("BeforeContext")), after=_context(rc.get("AfterContext")))


def _context(raw: Any) -> dict[str, Any] | None:
    """A resource's properties from a Before/AfterContext (a JSON document; None when absent)."""
    if not raw:
        return None
    try:
        doc = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    props = doc.get("Properties", doc)
    return dict(props) if isinstance(props, dict) else None


def template(c: AwsClients, name: str) -> dict[str, Any] | None:
    """The stack's current template (GetTemplate), or None when it cannot be read as JSON."""
    body = c.client("cloudformation").get_template(StackName=name).get("TemplateBody")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return None  # a YAML template made outside deployctl
    return dict(body) if isinstance(body, dict) else None


def change_sets(c: AwsClients, name: str) -> list[tuple[str, str, str]]:
    """(id, name, execution status) of the stack's change sets."""
    cf = c.client("cloudformation")
    out: list[tuple[str, str, str]] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"StackName": name}
        if token:
            kwargs["NextToken"] = token
        resp = cf.list_change_sets(**kwargs)
        out += [(str(s["ChangeSetId"]), str(s.get("ChangeSetName", "")), str(s.get("ExecutionStatus", "")))
                for s in resp.get("Summaries", [])
                if s.get("StackName", name) == name]  # moto 5 lists every stack's change sets
        token = resp.get("NextToken")
        if not token:
            return out


def endpoint(c: AwsClients) -> str:
    """Where CloudFormation calls go (an emulator's URL when AWS_ENDPOINT_URL points at one)."""
    return str(c.client("cloudformation").meta.endpoint_url)


def delete_change_set(c: AwsClients, change_set: str) -> None:
    try:
        c.client("cloudformation").delete_change_set(ChangeSetName=change_set)
    except ClientError as exc:
        if not is_not_found(exc) and error_code(exc) != "ValidationError":
            raise


def execute_change_set(c: AwsClients, change_set: str) -> None:
    c.client("cloudformation").execute_change_set(ChangeSetName=change_set)


def set_protection(c: AwsClients, name: str, on: bool) -> None:
    c.client("cloudformation").update_termination_protection(StackName=name, EnableTerminationProtection=on)


def delete_stack(c: AwsClients, name: str) -> None:
    c.client("cloudformation").delete_stack(StackName=name)


def events(c: AwsClients, name: str) -> list[StackEvent]:
    """The stack's events, oldest first."""
    cf = c.client("cloudformation")
    out: list[StackEvent] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"StackName": name}
        if token:
            kwargs["NextToken"] = token
        resp = cf.describe_stack_events(**kwargs)
        for raw in resp.get("StackEvents", []):
            out.append(StackEvent(event_id=raw["EventId"], at=raw["Timestamp"],
                                  logical_id=raw.get("LogicalResourceId", ""),
                                  resource_type=raw.get("ResourceType", ""),
                                  status=raw.get("ResourceStatus", ""),
                                  reason=raw.get("ResourceStatusReason", "") or ""))
        token = resp.get("NextToken")
        if not token:
            break
    return sorted(out, key=lambda e: e.at)


def follow(c: AwsClients, name: str, seen: set[str], *, timeout: float = 3600,
           sleep: Callable[[float], None] = time.sleep, stack_id: str | None = None) -> Iterator[StackEvent | str]:
    """Yield new events as they come, then the final stack status (a str) once it is terminal.
    `stack_id` follows a deleted stack, which its name no longer finds."""
    deadline = time.monotonic() + timeout
    ref = stack_id or name
    while True:
        for event in events(c, ref):
            if event.event_id not in seen:
                seen.add(event.event_id)
                yield event
        resp = c.client("cloudformation").describe_stacks(StackName=ref)
        status = (resp.get("Stacks") or [{}])[0].get("StackStatus", "DELETE_COMPLETE")
        if status in GOOD or status in BAD:
            for event in events(c, ref):  # the last events may land with the status
                if event.event_id not in seen:
                    seen.add(event.event_id)
                    yield event
            yield status
            return
        if time.monotonic() > deadline:
            yield f"TIMEOUT ({status})"
            return
        sleep(POLL_S)


def stack_id(c: AwsClients, name: str) -> str | None:
    try:
        resp = c.client("cloudformation").describe_stacks(StackName=name)
    except ClientError:
        return None
    stacks = resp.get("Stacks") or []
    return str(stacks[0]["StackId"]) if stacks else None


# --- account facts ---------------------------------------------------------------------------


def default_vpc(c: AwsClients) -> tuple[str, list[str]] | None:
    """(VPC id, its default-for-AZ subnets) of the account's default VPC, or None."""
    vpcs = c.ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}]).get("Vpcs", [])
    if not vpcs:
        return None
    vpc = vpcs[0]["VpcId"]
    subnets = c.ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                              {"Name": "default-for-az", "Values": ["true"]}]).get("Subnets", [])
    return vpc, sorted(s["SubnetId"] for s in subnets)


def vpc_of_subnets(c: AwsClients, subnets: list[str]) -> str | None:
    found = c.ec2.describe_subnets(SubnetIds=subnets).get("Subnets", [])
    vpcs = {s["VpcId"] for s in found}
    return vpcs.pop() if len(vpcs) == 1 else None


def table_exists(c: AwsClients, name: str) -> bool:
    try:
        c.client("dynamodb").describe_table(TableName=name)
    except ClientError as exc:
        if is_not_found(exc):
            return False
        raise
    return True


def repository_exists(c: AwsClients, name: str) -> bool:
    try:
        c.ecr.describe_repositories(repositoryNames=[name])
    except ClientError as exc:
        if is_not_found(exc):
            return False
        raise
    return True


def oidc_provider_exists(c: AwsClients, host: str) -> bool:
    arns = [p["Arn"] for p in c.iam.list_open_id_connect_providers().get("OpenIDConnectProviderList", [])]
    return any(arn.endswith(f"oidc-provider/{host}") for arn in arns)


def secret_exists(c: AwsClients, ref: str) -> bool:
    try:
        c.secretsmanager.describe_secret(SecretId=ref)
    except ClientError as exc:
        if is_not_found(exc):
            return False
        raise
    return True


def create_placeholder_secret(c: AwsClients, name: str, tags: Mapping[str, str]) -> None:
    """A secret with no value at all (no version): ECS cannot start a task from it until someone
    sets one, which is the point — bootstrap never invents a secret value."""
    c.secretsmanager.create_secret(Name=name, Description="placeholder created by deployctl bootstrap: set its value",
                                   Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


def running_services(c: AwsClients, cluster: str, services: list[str] | None = None) -> list[str]:
    """Those of `services` (default: every service of the cluster) in `cluster` that are ACTIVE
    with tasks wanted or running. DescribeServices takes at most 10 names a call."""
    try:
        names = list(services) if services is not None else _service_names(c, cluster)
        found = []
        for i in range(0, len(names), 10):
            resp = c.ecs.describe_services(cluster=cluster, services=names[i:i + 10])
            found += [s["serviceName"] for s in resp.get("services", [])
                      if s.get("status") == "ACTIVE" and (s.get("desiredCount", 0) or s.get("runningCount", 0))]
    except ClientError as exc:
        if error_code(exc) == "ClusterNotFoundException":
            return []
        raise
    return sorted(found)


def _service_names(c: AwsClients, cluster: str) -> list[str]:
    names: list[str] = []
    for page in c.ecs.get_paginator("list_services").paginate(cluster=cluster):
        names += [arn.rsplit("/", 1)[-1] for arn in page.get("serviceArns", [])]
    return names
