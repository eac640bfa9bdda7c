"""The `bootstrap` use case: from an empty account to what `run --env ENV` needs.

plan() renders the stacks (pure; `bootstrap --plan`); prepare() reads what the account already
has and makes a change set per stack; execute() applies them and follows the stack events;
destroy() deletes the environment's stack, refusing while its services run or when it is
protected. Templates: deployctl.render.cfn. CloudFormation rolls a failed stack back by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deployctl.adapters import cfn_gateway as cfn_api
from deployctl.adapters.cfn_gateway import Change, StackEvent
from deployctl.config.model import ResolvedConfig
from deployctl.errors import DeployFailed, UsageError
from deployctl.render import cfn, ecs

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
class SecretRef:
    ref: str
    kind: str  # secretsmanager | ssm


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
    if cfg.environment.target != "ecs":
        raise UsageError(f"`bootstrap` creates AWS resources for ECS environments; {cfg.env_name} has target "
                         f"{cfg.environment.target}", hint="bootstrap an ECS environment, e.g. --env staging")
    if cfg.environment.preview:
        raise UsageError(f"{cfg.env_name} is a preview environment: its copies run in the cluster and network of "
                         "an environment that is bootstrapped already",
                         hint="bootstrap that environment, then give this one the same `from_stack:`")


def elsewhere(cfg: ResolvedConfig, all_cfgs: Mapping[str, ResolvedConfig]) -> frozenset[str]:
    """Names this environment shares with an earlier ECS environment of the same region (file
    order): that environment's stack creates them, so this one must not (a name exists once)."""
    mine = cfn.names(cfg)
    found: set[str] = set()
    for name, other in all_cfgs.items():
        if name == cfg.env_name:
            break
        if other.environment.target != "ecs" or other.environment.preview or other.region != cfg.region:
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
               clients: Any) -> tuple[cfn.BootstrapFacts, dict[str, str]]:
    """What the account has (pieces made outside our account stack are left alone), and the
    values of the environment stack's parameters (the VPC, the default VPC's subnets)."""
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


def prepare(bp: BootstrapPlan, clients: Any) -> Prepared:
    """A change set per stack, described; stacks with nothing to change get none."""
    out = Prepared(bp)
    for stack in bp.stacks:
        view = cfn_api.describe(clients, stack.name)
        if view is not None and not view.usable:
            hint = (f"`deployctl bootstrap --destroy --env {bp.cfg.env_name}` deletes it; then bootstrap again"
                    if view.status == "ROLLBACK_COMPLETE" else "wait for it to finish, then run bootstrap again")
            raise UsageError(f"stack {stack.name} is {view.status} and cannot be changed now", hint=hint)
        tags = {"deployctl:app": bp.cfg.app} | ({"deployctl:env": bp.cfg.env_name}
                                                if stack.kind == "environment" else {})
        change_set = cfn_api.create_change_set(clients, stack.name, stack.template, stack.parameters, tags,
                                               create=view is None)
        changes, reason = cfn_api.wait_change_set(clients, change_set)
        if changes is None:
            raise DeployFailed(f"CloudFormation refused the change set for {stack.name}: {reason}",
                               hint="nothing was changed; `deployctl bootstrap --plan` shows the template")
        if view is None:
            out.creating.add(stack.name)
        if not changes and view is not None:
            cfn_api.delete_change_set(clients, change_set)
        else:
            out.change_sets[stack.name] = change_set
        out.changes[stack.name] = changes
    return out


def discard(prep: Prepared, clients: Any) -> None:
    """Delete the change sets (a refused confirmation): nothing is left half-done. A stack that a
    CREATE change set made stays REVIEW_IN_PROGRESS with no resources; delete it too."""
    for stack, change_set in prep.change_sets.items():
        cfn_api.delete_change_set(clients, change_set)
        if stack in prep.creating:
            cfn_api.delete_stack(clients, stack)


def execute(prep: Prepared, clients: Any, log: Log) -> list[StackResult]:
    """Apply the change sets, account stack first; follow each to its verdict. DeployFailed names
    the first resource that failed and why (CloudFormation has rolled the stack back)."""
    results = []
    for stack in prep.plan.stacks:
        changes = prep.changes.get(stack.name, [])
        change_set = prep.change_sets.get(stack.name)
        if change_set is None:
            view = cfn_api.describe(clients, stack.name)
            results.append(StackResult(stack.name, "unchanged", [], view.outputs if view else {}))
            _check_outputs(stack, results[-1], prep.plan.cfg.env_name)
            continue
        seen = {e.event_id for e in cfn_api.events(clients, stack.name)} if stack.name not in prep.creating else set()
        cfn_api.execute_change_set(clients, change_set)
        status, failed = _follow(clients, stack.name, seen, log)
        view = cfn_api.describe(clients, stack.name)
        result = StackResult(stack.name, status, changes, view.outputs if view else {}, failed)
        results.append(result)
        if status not in cfn_api.GOOD:
            where = (f"{failed.logical_id} ({failed.resource_type}): {failed.reason}" if failed
                     else "no resource reported a reason")
            raise DeployFailed(f"stack {stack.name} ended {status}: {where}",
                               hint="CloudFormation rolled the stack back; fix the cause and run bootstrap again")
        _check_outputs(stack, result, prep.plan.cfg.env_name)
        if stack.protect and view is not None and not view.protected:
            cfn_api.set_protection(clients, stack.name, True)
            log(f"{stack.name}: termination protection on ({prep.plan.cfg.env_name} is only reached by promotion)")
    return results


def _check_outputs(stack: StackPlan, result: StackResult, env: str) -> None:
    """A stack is ready only with every output its template declares: `from_stack` and `run`
    read them, and a stack changed by hand (or an older template) can lack one."""
    missing = sorted(set(stack.template.get("Outputs") or {}) - set(result.outputs))
    if missing:
        raise DeployFailed(f"stack {stack.name} is {result.status} but has no output {', '.join(missing)}, "
                           "which deploys of this environment read",
                           hint="the stack was changed outside deployctl, and its resources match the template, "
                                "so bootstrap has nothing to apply: update the stack with the template that "
                                f"`deployctl bootstrap --env {env} --plan --json` prints (console or "
                                "`aws cloudformation update-stack`)")


def _follow(clients: Any, name: str, seen: set[str], log: Log, stack_id: str | None = None) -> tuple[
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


def event_line(event: StackEvent) -> str:
    reason = f" — {event.reason}" if event.reason else ""
    return f"  {event.at:%H:%M:%S} {event.status:<28} {event.resource_type:<42} {event.logical_id}{reason}"


def change_lines(changes: Iterable[Change], names: Mapping[str, str] | None = None) -> list[str]:
    """The change set in `diff` style: + add, ~ modify, - remove; `names` (logical id → the
    name the template gives) names what an Add creates, which has no physical id yet."""
    sign = {"Add": "+", "Modify": "~", "Remove": "-", "Import": "+", "Dynamic": "~"}
    out = []
    for ch in changes:
        replace = " (replaced: a new physical resource)" if ch.replacement == "True" else (
            " (may be replaced)" if ch.replacement == "Conditional" else "")
        given = ch.physical_id or (names or {}).get(ch.logical_id, "")
        name = f" {given}" if given else ""
        out.append(f"  {sign.get(ch.action, '?')} {ch.resource_type:<42} {ch.logical_id}{name}{replace}")
    return out


# --- secrets: never a value ------------------------------------------------------------------


def secret_steps(bp: BootstrapPlan, clients: Any, *, create: bool, log: Log) -> list[str]:
    """Commands that set each referenced secret that has no value yet. With `create`, missing
    Secrets Manager secrets are created as empty placeholders (no value, no version)."""
    steps = []
    for secret in bp.secrets:
        if secret.kind == "ssm":
            name = secret.ref[len("ssm:"):] if secret.ref.startswith("ssm:") else secret.ref
            if _parameter_exists(clients, name):
                continue
            steps.append(f"aws ssm put-parameter --region {bp.cfg.region} --type SecureString --name {name} "
                         f"--value \"$(cat {_file_for(name)})\"")
            continue
        if cfn_api.secret_exists(clients, secret.ref):
            if _has_value(clients, secret.ref):
                continue
        elif create and not secret.ref.startswith("arn:"):
            cfn_api.create_placeholder_secret(clients, secret.ref, {"deployctl:app": bp.cfg.app})
            log(f"created secret {secret.ref} as an empty placeholder (no value)")
        else:
            steps.append(f"aws secretsmanager create-secret --region {bp.cfg.region} --name {secret.ref}")
            continue
        steps.append(f"aws secretsmanager put-secret-value --region {bp.cfg.region} --secret-id {secret.ref} "
                     f"--secret-string \"$(cat {_file_for(secret.ref)})\"")
    return steps


def _file_for(name: str) -> str:
    return name.strip("/").replace("/", "-") + ".txt"


def _parameter_exists(clients: Any, name: str) -> bool:
    found = clients.ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}]).get("Parameters", [])
    return bool(found)


def _has_value(clients: Any, ref: str) -> bool:
    """Whether the secret has a current version, read from its metadata (never its value)."""
    meta = clients.secretsmanager.describe_secret(SecretId=ref)
    return any("AWSCURRENT" in stages for stages in (meta.get("VersionIdsToStages") or {}).values())


# --- destroy ------------------------------------------------------------------------------------


def check_destroy(cfg: ResolvedConfig, clients: Any) -> cfn_api.StackView:
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
    cluster = cfg.environment.cluster or view.outputs.get(cfn.OUT_CLUSTER, "")
    running = cfn_api.running_services(clients, cluster, [ecs.service_name(cfg, s) for s in cfg.services])
    if running:
        raise UsageError(f"{cfg.env_name} still runs {', '.join(running)} in cluster {cluster}; deleting the stack "
                         "would pull the network and roles from under them. Nothing was deleted",
                         hint="stop them first (scale to 0 and delete the services), then destroy the stack")
    return view


def destroy(cfg: ResolvedConfig, clients: Any, log: Log) -> str:
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
