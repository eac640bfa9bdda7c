"""The `bootstrap` use case: from an empty account to what `run --env ENV` needs.

plan() renders the stacks (pure; `bootstrap --plan`); prepare() reads what the account already
has and makes a change set per stack; execute() applies them and follows the stack events;
destroy() deletes the environment's stack, refusing while its services run or when it is
protected. Templates: deployctl.render.cfn. CloudFormation rolls a failed stack back by itself.

How change sets and stack events are shown: deployctl.app.bootstrap_view; the secrets a stack's
services reference (never a value): deployctl.app.bootstrap_secrets. Both are named here too
(change_lines, secret_steps) for the command.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deployctl import targets
from deployctl.adapters import cfn_gateway as cfn_api
from deployctl.adapters.aws import AwsClients
from deployctl.adapters.cfn_gateway import Change, StackEvent
from deployctl.app.bootstrap_secrets import SecretRef as SecretRef
from deployctl.app.bootstrap_secrets import secret_steps as secret_steps
from deployctl.app.bootstrap_view import change_lines as change_lines
from deployctl.app.bootstrap_view import event_line, with_properties
from deployctl.config.model import ResolvedConfig
from deployctl.errors import DeployFailed, UsageError
from deployctl.render import cfn, ecs
from deployctl.targets.base import FEATURE_STACK

Log = Callable[[str], None]


@dataclass(frozen=True)
class StackPlan:
    name: str
    kind: str  # account | environment
    template: dict[str, Any]
    parameters: dict[str, str] = field(default_factory=dict)
    protect: bool = False  # termination protection (environments promoted into: prod)

    def resources(self) -> list[tuple[str, str, str]]:
        """(logical id, type, the name it gets) of every resource, in template order."""
        out = []
        for logical, res in self.template["Resources"].items():
            props = res.get("Properties", {})
            name = next((str(props[k]) for k in ("ClusterName", "RoleName", "Name", "QueueName", "LogGroupName",
                                                 "RepositoryName", "TableName", "Url") if k in props), "")
            out.append((logical, res["Type"], name))
        return out


@dataclass(frozen=True)
class BootstrapPlan:
    cfg: ResolvedConfig
    stacks: tuple[StackPlan, ...]
    secrets: tuple[SecretRef, ...]


@dataclass
class Prepared:
    """Change sets made, nothing applied yet."""

    plan: BootstrapPlan
    change_sets: dict[str, str] = field(default_factory=dict)  # stack → change set id
    changes: dict[str, list[Change]] = field(default_factory=dict)  # stack → its changes ([] = none)
    creating: set[str] = field(default_factory=set)

    @property
    def anything(self) -> bool:
        return any(self.changes.values())


@dataclass
class StackResult:
    name: str
    status: str
    changes: list[Change]
    outputs: dict[str, str] = field(default_factory=dict)
    failed: StackEvent | None = None


def check_bootstrappable(cfg: ResolvedConfig) -> None:
    if not targets.supports(cfg, FEATURE_STACK):
        raise UsageError(f"`bootstrap` creates AWS resources for ECS environments; {cfg.env_name} has target "
                         f"{cfg.environment.target}", hint="bootstrap an ECS environment, e.g. --env staging")
    if cfg.environment.preview:
        raise UsageError(f"{cfg.env_name} is a preview environment: its copies run in the cluster and network of "
                         "an environment that is bootstrapped already",
                         hint="bootstrap that environment, then give this one the same `from_stack:`")


# Ids that only stand in for the user's own: a TODO, and the sequential hex ids of examples
# (subnet-0123456789abcdef0, sg-…), as older `init` wrote them. Not the documentation account
# 123456789012: it is also moto's, where such ARNs are real.
PLACEHOLDER = re.compile(r"\bTODO\b|-0123456789abcdef")


def placeholders(cfg: ResolvedConfig) -> list[tuple[str, str]]:
    """(deploy.yaml key, value) of each id in cfg that is a placeholder, not a real one."""
    env, where = cfg.environment, f"environments.{cfg.env_name}"
    found: list[tuple[str, str]] = []
    if env.cluster:
        found.append((f"{where}.cluster", env.cluster))
    if env.network:
        found += [(f"{where}.network.subnets", s) for s in env.network.subnets]
        found += [(f"{where}.network.security_groups", g) for g in env.network.security_groups]
    if env.roles:
        found.append((f"{where}.roles.execution", env.roles.execution))
        if env.roles.task:
            found.append((f"{where}.roles.task", env.roles.task))
    for name, svc in cfg.services.items():
        if svc.load_balancer is not None:
            found.append((f"services.{name}.load_balancer.target_group", svc.load_balancer.target_group))
    if cfg.bootstrap and cfg.bootstrap.certificate_arn:
        found.append(("bootstrap.certificate_arn", cfg.bootstrap.certificate_arn))
    return [(key, value) for key, value in found if PLACEHOLDER.search(value)]


def check_no_placeholders(cfg: ResolvedConfig) -> None:
    """The stack would be built on ids that do not exist (roles named after a TODO ARN, subnets
    that fail at create time): refuse before rendering, naming the key."""
    found = placeholders(cfg)
    if not found:
        return
    listed = "; ".join(f"{key}: {value}" for key, value in found)
    raise UsageError(
        f"deploy.yaml still has placeholder ids for {cfg.env_name} ({listed}); bootstrap would build the "
        "stack on ids that do not exist. Nothing was created",
        hint=f"delete those keys and set `from_stack: {cfn.env_stack_name(cfg)}` under environments."
             f"{cfg.env_name} so that bootstrap creates them, or write your real ids (docs/bootstrap.md)")


def elsewhere(cfg: ResolvedConfig, all_cfgs: Mapping[str, ResolvedConfig]) -> frozenset[str]:
    """Names this environment shares with an earlier ECS environment of the same region (file
    order): that environment's stack creates them, so this one must not (a name exists once)."""
    mine = cfn.names(cfg)
    found: set[str] = set()
    for name, other in all_cfgs.items():
        if name == cfg.env_name:
            break
        if not targets.supports(other, FEATURE_STACK) or other.environment.preview or other.region != cfg.region:
            continue
        theirs = cfn.names(other)
        if theirs.cluster == mine.cluster:
            found.add("cluster")
        if theirs.execution_role == mine.execution_role:
            found.add("execution_role")
        if theirs.task_role == mine.task_role:
            found.add("task_role")
        found |= {f"tg:{svc}" for svc, tg in mine.target_groups.items() if tg in theirs.target_groups.values()}
    return frozenset(found)


def plan(cfg: ResolvedConfig, all_cfgs: Mapping[str, ResolvedConfig],
         facts: cfn.BootstrapFacts | None = None, parameters: Mapping[str, str] | None = None) -> BootstrapPlan:
    """The stacks for `cfg`'s environment. Pure: without facts it assumes an empty account."""
    check_bootstrappable(cfg)
    check_no_placeholders(cfg)
    facts = facts or cfn.BootstrapFacts(elsewhere=elsewhere(cfg, all_cfgs))
    env_template = cfn.env_template(cfg, facts, others=all_cfgs)
    wanted = set(env_template.get("Parameters", {}))
    params = {k: v for k, v in (parameters or {}).items() if k in wanted}
    stacks = (
        StackPlan(cfn.account_stack_name(cfg), "account", cfn.account_template(cfg, facts, all_cfgs=all_cfgs)),
        StackPlan(cfn.env_stack_name(cfg), "environment", env_template, params,
                  protect=cfg.environment.promote_from is not None),
    )
    refs = sorted({ref for svc in cfg.services.values() for ref in svc.secrets.values()})
    secrets = tuple(SecretRef(ecs.split_secret_ref(r)[0], "ssm" if ecs.is_ssm_ref(r) else "secretsmanager")
                    for r in refs)
    return BootstrapPlan(cfg, stacks, tuple(dict.fromkeys(secrets)))


def read_facts(cfg: ResolvedConfig, all_cfgs: Mapping[str, ResolvedConfig],
               clients: AwsClients) -> tuple[cfn.BootstrapFacts, dict[str, str]]:
    """What the account has (pieces made outside our account stack are left alone), and the
    values of the environment stack's parameters (the VPC, the default VPC's subnets)."""
    check_bootstrappable(cfg)
    check_no_placeholders(cfg)  # before looking the subnets up
    account = cfn_api.describe(clients, cfn.account_stack_name(cfg))
    ours = account.resources if account else frozenset()
    boot = cfn.settings(cfg)
    facts = cfn.BootstrapFacts(
        repository_exists="Repository" not in ours and cfg.image.registry == "ecr"
        and cfn_api.repository_exists(clients, cfg.image.repository),
        lock_table_exists="LockTable" not in ours and cfn_api.table_exists(clients, "deployctl-locks"),
        oidc_provider_exists=bool(boot.github_repository) and "GitHubOidc" not in ours
        and cfn_api.oidc_provider_exists(clients, "token.actions.githubusercontent.com"),
        elsewhere=elsewhere(cfg, all_cfgs),
    )
    params: dict[str, str] = {}
    mode = cfn.network_mode(cfg)
    if mode == "default":
        found = cfn_api.default_vpc(clients)
        if found is None or not found[1]:
            raise UsageError(f"{cfg.region} has no default VPC with subnets (bootstrap.network: default)",
                             hint="use bootstrap.network: new (or public), or name subnets in environment.network")
        params[cfn.PARAM_VPC], params[cfn.PARAM_SUBNETS] = found[0], ",".join(found[1])
    elif mode == "existing":
        net = cfg.environment.network
        if net is None:
            raise UsageError("bootstrap.network: existing needs environment.network.subnets",
                             hint="name the subnets, or use bootstrap.network: new")
        vpc = cfn_api.vpc_of_subnets(clients, list(net.subnets))
        if vpc is None:
            raise UsageError(f"the subnets of environment.network are not in one VPC of {cfg.region}",
                             hint="name subnets of one VPC (see `aws ec2 describe-subnets`)")
        params[cfn.PARAM_VPC] = vpc
    return facts, params


def prepare(bp: BootstrapPlan, clients: AwsClients, log: Log | None = None) -> Prepared:
    """A change set per stack, described; stacks with nothing to change get none. On any failure
    (a refused change set, an AWS error, Ctrl-C) the change sets made so far are deleted again,
    with the empty stacks their CREATE made: nothing is left half-done."""
    out = Prepared(bp)
    change_set: str | None = None
    try:
        for stack in bp.stacks:
            change_set = None
            view = _leftovers(bp, stack, cfn_api.describe(clients, stack.name), clients, log or (lambda _: None))
            if view is not None and not view.usable:
                hint = (f"`deployctl bootstrap --destroy --env {bp.cfg.env_name}` deletes it; then bootstrap again"
                        if view.status == "ROLLBACK_COMPLETE" else
                        f"`aws cloudformation delete-stack --stack-name {stack.name}` deletes it (it has no "
                        "resources); then bootstrap again" if view.status == "REVIEW_IN_PROGRESS" else
                        "wait for it to finish, then run bootstrap again")
                raise UsageError(f"stack {stack.name} is {view.status} and cannot be changed now", hint=hint)
            tags = {"deployctl:app": bp.cfg.app} | ({"deployctl:env": bp.cfg.env_name}
                                                    if stack.kind == "environment" else {})
            if view is None:
                out.creating.add(stack.name)
            change_set = cfn_api.create_change_set(clients, stack.name, stack.template, stack.parameters, tags,
                                                   create=view is None)
            changes, reason = cfn_api.wait_change_set(clients, change_set)
            if changes is None:
                raise DeployFailed(f"CloudFormation refused the change set for {stack.name}: {reason}",
                                   hint="nothing was changed; `deployctl bootstrap --plan` shows the template")
            if not changes and view is not None:
                cfn_api.delete_change_set(clients, change_set)
            else:
                out.change_sets[stack.name] = change_set
            change_set = None
            if view is not None and any(ch.action == "Modify" for ch in changes):
                changes = with_properties(changes, cfn_api.template(clients, stack.name), stack.template)
            out.changes[stack.name] = changes
    except BaseException:
        if change_set is not None:
            out.change_sets[stack.name] = change_set
        discard(out, clients)
        raise
    return out


def _leftovers(bp: BootstrapPlan, stack: StackPlan, view: cfn_api.StackView | None, clients: AwsClients,
               log: Log) -> cfn_api.StackView | None:
    """Remove what an earlier bootstrap left (killed before it could clean up): its change sets,
    and a stack that a CREATE change set made, still REVIEW_IN_PROGRESS with no resources (it
    would block every later bootstrap). Returns the stack as it is now (None: gone)."""
    if view is None:
        return None
    ours = view.tags.get("deployctl:app") == bp.cfg.app
    for ident, name, execution in cfn_api.change_sets(clients, stack.name):
        if ours and name.startswith("deployctl-") and execution in ("AVAILABLE", "UNAVAILABLE"):  # never ran
            cfn_api.delete_change_set(clients, ident)
            log(f"stack {stack.name}: removed change set {name}, left by an earlier bootstrap")
    if view.status == "REVIEW_IN_PROGRESS" and ours and not view.resources:
        cfn_api.delete_stack(clients, view.stack_id or stack.name)
        _follow(clients, stack.name, set(), lambda _: None, stack_id=view.stack_id or None)
        log(f"stack {stack.name}: removed, left REVIEW_IN_PROGRESS (no resources) by an earlier bootstrap")
        return None
    return view


def discard(prep: Prepared, clients: AwsClients, stacks: Iterable[str] | None = None) -> None:
    """Delete the change sets of `stacks` (default: all) that have not run (a refused
    confirmation, a failure before they ran): nothing is left half-done. A stack that a CREATE
    change set made stays REVIEW_IN_PROGRESS with no resources; delete it too."""
    for stack in list(prep.change_sets if stacks is None else stacks):
        change_set = prep.change_sets.pop(stack, None)
        if change_set is None:
            continue
        cfn_api.delete_change_set(clients, change_set)
        if stack in prep.creating:
            cfn_api.delete_stack(clients, stack)


def execute(prep: Prepared, clients: AwsClients, log: Log) -> list[StackResult]:
    """Apply the change sets, account stack first; follow each to its verdict. DeployFailed names
    the first resource that failed and why (CloudFormation has rolled the stack back). A stack
    whose change set never ran (an earlier one failed, an AWS error, Ctrl-C before it started)
    has its change set deleted."""
    results: list[StackResult] = []
    waiting = [s.name for s in prep.plan.stacks]
    try:
        for stack in prep.plan.stacks:
            results.append(_apply(prep, stack, clients, log, waiting))
    except BaseException:
        discard(prep, clients, waiting)
        raise
    return results


def _apply(prep: Prepared, stack: StackPlan, clients: AwsClients, log: Log, waiting: list[str]) -> StackResult:
    changes = prep.changes.get(stack.name, [])
    change_set = prep.change_sets.get(stack.name)
    if change_set is None:
        waiting.remove(stack.name)
        view = cfn_api.describe(clients, stack.name)
        result = StackResult(stack.name, "unchanged", [], view.outputs if view else {})
        _check_outputs(stack, result, prep.plan.cfg.env_name, clients)
        return result
    seen = {e.event_id for e in cfn_api.events(clients, stack.name)} if stack.name not in prep.creating else set()
    cfn_api.execute_change_set(clients, change_set)
    waiting.remove(stack.name)  # running: CloudFormation owns it now
    prep.change_sets.pop(stack.name)
    status, failed = _follow(clients, stack.name, seen, log)
    view = cfn_api.describe(clients, stack.name)
    result = StackResult(stack.name, status, changes, view.outputs if view else {}, failed)
    if status not in cfn_api.GOOD:
        where = (f"{failed.logical_id} ({failed.resource_type}): {failed.reason}" if failed
                 else "no resource reported a reason")
        raise DeployFailed(f"stack {stack.name} ended {status}: {where}",
                           hint="CloudFormation rolled the stack back; fix the cause and run bootstrap again")
    _check_outputs(stack, result, prep.plan.cfg.env_name, clients)
    if stack.protect and view is not None and not view.protected:
        cfn_api.set_protection(clients, stack.name, True)
        log(f"{stack.name}: termination protection on ({prep.plan.cfg.env_name} is only reached by promotion)")
    return result


def _check_outputs(stack: StackPlan, result: StackResult, env: str, clients: AwsClients) -> None:
    """A stack is ready only with every output its template declares: `from_stack` and `run`
    read them, and a stack changed by hand (or an older template) can lack one."""
    missing = sorted(set(stack.template.get("Outputs") or {}) - set(result.outputs))
    if not missing:
        return
    live = cfn_api.template(clients, stack.name) or {}
    if not set(missing) - set(live.get("Outputs") or {}):
        # Its own template declares them, and CloudFormation does not report them: AWS always
        # does for a completed stack. moto server (5.x) computes outputs when a stack is created
        # or updated directly, never after a change set ran.
        raise DeployFailed(
            f"stack {stack.name} is {result.status} and its template declares output {', '.join(missing)}, but "
            f"the CloudFormation at {cfn_api.endpoint(clients)} does not report it: that is not AWS's own "
            "CloudFormation. An emulator such as moto server computes no outputs for a stack made or changed "
            "through a change set, which is how bootstrap works, and deploys read those outputs",
            hint="run bootstrap against a real (sandbox) AWS account; `deployctl bootstrap --plan` needs no account "
                 "(docs/bootstrap.md, \"Trying it locally\")")
    raise DeployFailed(f"stack {stack.name} is {result.status} but has no output {', '.join(missing)}, "
                       "which deploys of this environment read",
                       hint="the stack was changed outside deployctl, and its resources match the template, "
                            "so bootstrap has nothing to apply: update the stack with the template that "
                            f"`deployctl bootstrap --env {env} --plan --json` prints (console or "
                            "`aws cloudformation update-stack`)")


def _follow(clients: AwsClients, name: str, seen: set[str], log: Log, stack_id: str | None = None) -> tuple[
        str, StackEvent | None]:
    failed: StackEvent | None = None
    status = "?"
    for item in cfn_api.follow(clients, name, seen, stack_id=stack_id):
        if isinstance(item, str):
            status = item
            break
        log(event_line(item))
        if item.failed and failed is None and "cancelled" not in item.reason.lower():
            failed = item
    return status, failed


def check_destroy(cfg: ResolvedConfig, clients: AwsClients,
                  all_cfgs: Mapping[str, ResolvedConfig] | None = None) -> cfn_api.StackView:
    """The environment's stack, if it may be deleted now; UsageError (exit 2) says why not."""
    check_bootstrappable(cfg)
    name = cfn.env_stack_name(cfg)
    view = cfn_api.describe(clients, name)
    if view is None:
        raise UsageError(f"stack {name} does not exist in {cfg.region}: nothing to destroy")
    if view.protected:
        raise UsageError(
            f"stack {name} has termination protection on ({cfg.env_name} is only reached by promotion); "
            "nothing was deleted",
            hint=f"if you really mean it: `aws cloudformation update-termination-protection --region {cfg.region} "
                 f"--no-enable-termination-protection --stack-name {name}`, then run this again")
    users = stack_users(cfg, all_cfgs or {cfg.env_name: cfg}, view, clients)
    if users:
        listed = "; ".join(f"cluster {cluster} still runs {', '.join(names)}" for cluster, names in users.items())
        raise UsageError(f"stack {name} is still in use ({listed}); deleting it would pull the cluster, network "
                         "and roles from under them. Nothing was deleted",
                         hint="stop them first (`deployctl destroy --env ENV --name NAME` for a preview copy; scale "
                              "to 0 and delete the services of an environment), then destroy the stack")
    return view


def stack_users(cfg: ResolvedConfig, all_cfgs: Mapping[str, ResolvedConfig], view: cfn_api.StackView,
                clients: AwsClients) -> dict[str, list[str]]:
    """cluster → the running services that use what the environment's stack holds: every service
    in its cluster (the environment's, its preview copies, anything else placed there, all in
    the stack's network), and the services of other environments that use a cluster, role or
    target group this stack created (deploy.yaml names the same one)."""
    mine = cfn.names(cfg)
    cluster = view.outputs.get(cfn.OUT_CLUSTER) or cfg.environment.cluster or mine.cluster
    found: dict[str, list[str]] = {}
    running = cfn_api.running_services(clients, cluster)
    if running:
        found[cluster] = running
    owned = view.resources
    for env_name, other in all_cfgs.items():
        if env_name == cfg.env_name or not targets.supports(other, FEATURE_STACK) or other.region != cfg.region:
            continue
        theirs = cfn.names(other)
        shares = (("Cluster" in owned and theirs.cluster == mine.cluster)
                  or ("ExecutionRole" in owned and theirs.execution_role == mine.execution_role)
                  or ("TaskRole" in owned and theirs.task_role == mine.task_role)
                  or any(cfn.target_group_output(s) in owned and tg in theirs.target_groups.values()
                         for s, tg in mine.target_groups.items()))  # the resource has the output's id
        if not shares or theirs.cluster == cluster:
            continue  # its cluster is ours: listed above
        names = cfn_api.running_services(clients, theirs.cluster, [ecs.service_name(other, s) for s in other.services])
        if names:
            found.setdefault(theirs.cluster, []).extend(names)
    return found


def destroy(cfg: ResolvedConfig, clients: AwsClients, log: Log) -> str:
    name = cfn.env_stack_name(cfg)
    ident = cfn_api.stack_id(clients, name)
    seen = {e.event_id for e in cfn_api.events(clients, name)}
    cfn_api.delete_stack(clients, name)
    status, failed = _follow(clients, name, seen, log, stack_id=ident)
    if status != "DELETE_COMPLETE":
        where = f"{failed.logical_id} ({failed.resource_type}): {failed.reason}" if failed else status
        raise DeployFailed(f"stack {name} was not deleted: {where}",
                           hint="fix what holds the resource (see the reason), then run destroy again")
    return status
