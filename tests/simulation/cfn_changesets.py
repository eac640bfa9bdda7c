"""SIMULATION of two CloudFormation behaviours that moto 5.2 lacks when a change set is executed.

1. Outputs. A stack made by a CREATE change set has its outputs computed from the empty
   template it was created with, so DescribeStacks shows none. CloudFormation shows the outputs
   of the template the change set applied:
   https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_Output.html
2. A resource that fails. moto lets the error escape as an HTTP 500. CloudFormation records a
   `CREATE_FAILED` (or `UPDATE_FAILED`) event for the resource with the reason, rolls the stack
   back by itself and ends it `ROLLBACK_COMPLETE` after a failed create, `UPDATE_ROLLBACK_COMPLETE`
   after a failed update:
   https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/stack-failure-options.html
   Here the resources created before the failure are deleted again (best effort), as the
   rollback would.

3. Cluster capacity providers. moto's AWS::ECS::Cluster ignores `CapacityProviders` and
   `DefaultCapacityProviderStrategy`; CloudFormation associates them with the cluster:
   https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-ecs-cluster.html
4. Termination protection. moto does not implement UpdateTerminationProtection; CloudFormation
   sets the flag, and DeleteStack on a protected stack fails with a ValidationError:
   https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-protect-stacks.html

Patched (restored on leaving ``installed``): ``CloudFormationBackend.execute_change_set``,
``CloudFormationBackend.delete_stack``, ``parsing.parse_and_create_resource`` (to learn which
resource failed), and an ``update_termination_protection`` action on ``CloudFormationResponse``. Written for the moto
line that tests/simulation/moto_patches.py supports (SUPPORTED_MOTO).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
from collections.abc import Iterator
from typing import Any

from .moto_patches import check_moto_version


class ResourceFailed(Exception):
    def __init__(self, logical_id: str, resource_type: str, reason: str) -> None:
        super().__init__(reason)
        self.logical_id, self.resource_type, self.reason = logical_id, resource_type, reason


def _create_resource(original: Any) -> Any:
    @functools.wraps(original)
    def create(logical_id: str, resource_json: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return original(logical_id, resource_json, *args, **kwargs)
        except ResourceFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - any backend error is the resource's failure
            reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            raise ResourceFailed(logical_id, resource_json.get("Type", "?"), reason) from exc

    return create


def _execute_change_set(original: Any) -> Any:
    @functools.wraps(original)
    def execute(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = self.change_sets.get(change_set_name) or next(
            (cs for cs in self.change_sets.values() if cs.change_set_name == change_set_name), None)
        stack = self.stacks[change_set.stack_id] if change_set is not None else None
        try:
            original(self, change_set_name, stack_name)
        except ResourceFailed as failed:
            if stack is None:
                raise
            _fail(stack, change_set.change_set_type, failed)
            change_set.execution_status = "EXECUTE_FAILED"
            return
        if stack is not None:
            stack._parse_template()  # moto keeps the template the stack was created with
            stack.output_map = stack._create_output_map()
            _cluster_capacity_providers(stack)

    return execute


def _cluster_capacity_providers(stack: Any) -> None:
    from moto.ecs.models import ecs_backends

    backend = ecs_backends[stack.account_id][stack.region_name]
    for logical, res in stack.template_dict.get("Resources", {}).items():
        props = res.get("Properties", {})
        if res.get("Type") == "AWS::ECS::Cluster" and props.get("CapacityProviders"):
            name = props.get("ClusterName") or stack.resource_map[logical].physical_resource_id
            backend.put_cluster_capacity_providers(name, props["CapacityProviders"],
                                                   props.get("DefaultCapacityProviderStrategy") or [])


def _fail(stack: Any, kind: str, failed: ResourceFailed) -> None:
    from moto.cloudformation.models import Event

    verb = "CREATE" if kind == "CREATE" else "UPDATE"
    stack.events.append(Event(stack_id=stack.stack_id, stack_name=stack.name, logical_resource_id=failed.logical_id,
                              physical_resource_id="", resource_type=failed.resource_type,
                              resource_status=f"{verb}_FAILED", resource_status_reason=failed.reason,
                              resource_properties=None))
    stack._add_stack_event("ROLLBACK_IN_PROGRESS" if verb == "CREATE" else "UPDATE_ROLLBACK_IN_PROGRESS",
                           resource_status_reason=f"The following resource(s) failed to {verb.lower()}: "
                                                  f"[{failed.logical_id}].")
    if verb == "CREATE":
        with contextlib.suppress(Exception):  # a partial map: delete what exists
            stack.resource_map.delete()
        # moto's resource map creates resources lazily when read (DescribeStackResources): a
        # rolled-back stack has none left to create.
        resources = stack.resource_map
        resources._resource_json_map = {}
        resources._parsed_resources = {k: v for k, v in resources._parsed_resources.items() if k.startswith("AWS::")}
    stack._add_stack_event("ROLLBACK_COMPLETE" if verb == "CREATE" else "UPDATE_ROLLBACK_COMPLETE")
    stack.status = "ROLLBACK_COMPLETE" if verb == "CREATE" else "UPDATE_ROLLBACK_COMPLETE"


def _update_termination_protection(self: Any) -> Any:
    from moto.core.responses import ActionResult

    stack = self.cloudformation_backend.describe_stacks(self._get_param("StackName"))[0]
    stack.enable_termination_protection = str(self._get_param("EnableTerminationProtection")).lower() == "true"
    return ActionResult({"StackId": stack.stack_id})


def _delete_stack(original: Any) -> Any:
    @functools.wraps(original)
    def delete(self: Any, name_or_stack_id: str) -> None:
        from moto.cloudformation.exceptions import ValidationError

        for stack in self.stacks.values():
            if name_or_stack_id in (stack.name, stack.stack_id) and stack.enable_termination_protection:
                raise ValidationError(name_or_stack_id, message=f"Stack [{stack.name}] cannot be deleted while "
                                                                "TerminationProtection is enabled")
        original(self, name_or_stack_id)

    return delete


@contextlib.contextmanager
def installed() -> Iterator[None]:
    check_moto_version(importlib.metadata.version("moto"))
    from moto.cloudformation import models, parsing, responses

    backend = models.CloudFormationBackend
    saved = [(backend, "execute_change_set", backend.execute_change_set),
             (backend, "delete_stack", backend.delete_stack),
             (parsing, "parse_and_create_resource", parsing.parse_and_create_resource)]
    backend.execute_change_set = _execute_change_set(backend.execute_change_set)  # type: ignore[method-assign]
    backend.delete_stack = _delete_stack(backend.delete_stack)  # type: ignore[method-assign]
    parsing.parse_and_create_resource = _create_resource(parsing.parse_and_create_resource)
    responses.CloudFormationResponse.update_termination_protection = (  # type: ignore[attr-defined]
        _update_termination_protection)
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)
        del responses.CloudFormationResponse.update_termination_protection  # type: ignore[attr-defined]
