"""Preflight for an ECS deploy: check everything the deploy needs exists, before changing anything.

Every check runs even when an earlier one failed, so one run lists every missing thing at once
(PreflightFailed, exit 1, nothing changed). What the checks resolve on the way (the account id,
the image digest, full secret ARNs with their random suffix, target group ARNs, alarm states)
is returned so the plan can be re-rendered with real values.

Secret VALUES are never read: Secrets Manager is asked `DescribeSecret`, SSM `DescribeParameters`
with a name filter (never GetParameter, which returns the value).

AWS clients come in through `aws` (deployctl.adapters.aws.Clients); error classification uses
the adapter's helpers, so this module imports no boto3.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deployctl.adapters import aws as awsa
from deployctl.adapters import ecs_gateway, registry
from deployctl.config.model import ResolvedConfig
from deployctl.errors import EXIT_USAGE, DeployctlError, ExternalError, PreflightFailed, UsageError
from deployctl.render.ecs import TAG_PREFIX, service_name, split_secret_ref

ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


class ServiceOwnedElsewhere(DeployctlError):
    """An ECS service this deploy would update is tagged as another app's or environment's."""

    exit_code = EXIT_USAGE


@dataclass
class PreflightResult:
    account_id: str
    image_ref: str  # by digest when the registry could be asked, else as given
    image_digest: str | None
    # deploy.yaml reference → full ARN of the secret/parameter (without a json-key/version suffix:
    # render.ecs.secret_arn puts the reference's suffix back on)
    secret_arns: dict[str, str] = field(default_factory=dict)
    target_group_arns: dict[str, str] = field(default_factory=dict)  # name → ARN
    alarm_states: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def cannot_check(self, what: str, exc: BaseException) -> None:
        if awsa.is_access_denied(exc):
            self.problems.append(f"cannot check {what}: access denied ({awsa.error_code(exc)}); "
                                 "the deploy would likely fail on it too")
        else:
            self.problems.append(f"cannot check {what}: {awsa.error_code(exc) or type(exc).__name__}: "
                                 f"{awsa.error_message(exc)}")


def ssm_name(ref: str) -> str | None:
    """Parameter name for `ssm:/a/b`, `ssm:name` or an SSM parameter ARN; None for other refs."""
    if ref.startswith("ssm:"):
        return ref[len("ssm:"):]
    if ref.startswith("arn:") and ":ssm:" in ref and ":parameter" in ref:
        rest = ref.split(":parameter", 1)[1]  # "/a/b" or "/name"
        return rest if rest.count("/") > 1 else rest.lstrip("/")
    return None


def role_name(arn: str) -> str:
    """`arn:aws:iam::123:role/path/name` → `name` (GetRole takes the name without the path)."""
    return arn.rsplit("/", 1)[-1]


def run(cfg: ResolvedConfig, aws: awsa.AwsClients, image_ref: str, *, log: Callable[[str], None] = lambda s: None,
        registry_check: Callable[[str], tuple[str | None, str | None]] | None = None,
        preview: str | None = None) -> PreflightResult:
    """Check the services belong to this environment, then the cluster, image, secrets, target
    groups, roles and alarms. Raises ServiceOwnedElsewhere (exit 2) when a service is another
    app's or environment's, PreflightFailed listing every other problem; ExternalError when AWS
    itself cannot be reached or credentials are bad.

    registry_check(image_ref) → (digest or None if absent, note) for non-ECR registries; the
    default asks the registry through deployctl.adapters.registry. `preview`: the preview copy deployed.
    """
    with awsa.aws_errors("checking the AWS account (preflight)"):
        account = awsa.account_id(aws)
    rep = _Report()
    result = PreflightResult(account_id=account, image_ref=image_ref, image_digest=None)
    _check_ownership(cfg, aws, rep, preview)
    _check_cluster(cfg, aws, rep)
    _check_network(cfg, aws, rep)
    _check_image(cfg, aws, image_ref, rep, result, registry_check)
    _check_secrets(cfg, aws, rep, result)
    _check_target_groups(cfg, aws, rep, result)
    _check_roles(cfg, aws, rep)
    _check_alarms(cfg, aws, rep, result)
    _check_queue(cfg, aws, rep)
    result.notes = rep.notes
    for note in rep.notes:
        log(f"preflight: {note}")
    if rep.problems:
        raise failed(cfg, rep.problems)
    log(f"preflight: ok (cluster {cfg.environment.cluster}, image {result.image_ref}, "
        f"{_count(len(result.secret_arns), 'secret')}, {_count(len(result.target_group_arns), 'target group')}, "
        f"{len(result.alarm_states)} alarms)")
    return result


def _guard(rep: _Report, what: str, fn: Callable[[], None]) -> None:
    """Run one check; AWS errors become problems, except unreachable/no credentials (raised)."""
    try:
        fn()
    except awsa.ClientError as exc:
        if awsa.is_throttle(exc):
            rep.problems.append(f"cannot check {what}: AWS kept throttling the request; run again")
        else:
            rep.cannot_check(what, exc)
    except awsa.BotoCoreError as exc:
        err = awsa.translate(exc, f"checking {what}")
        raise (err or ExternalError(str(exc))) from None


def owner_conflict(cfg: ResolvedConfig, svc: str, preview: str | None, tags: Mapping[str, str]) -> str | None:
    """Why an existing ECS service is not this deploy's to update (from its deployctl tags), or None.

    A service without any deployctl tag (made by hand or by other tooling) is taken over: that
    is how existing services are adopted (docs/environments.md)."""
    mine = {"app": cfg.app, "env": cfg.env_name, "preview": preview or "", "service": svc}
    found = {k: tags.get(TAG_PREFIX + k, "") for k in mine}
    if not any(k.startswith(TAG_PREFIX) for k in tags):
        return None
    wrong = [k for k in ("app", "env", "preview") if found[k] != mine[k]]
    if found["service"] and found["service"] != svc:
        wrong.append("service")
    if not wrong:
        return None
    owner = f"app {found['app'] or '?'}, environment {found['env'] or '?'}"
    if found["preview"]:
        owner += f", preview {found['preview']}"
    if found["service"] and found["service"] != svc:
        owner += f", service {found['service']}"
    return owner


def _check_ownership(cfg: ResolvedConfig, aws: awsa.AwsClients, rep: _Report, preview: str | None) -> None:
    """Refuse, before anything is registered, to update a service another environment deployed:
    two environments whose names meet in one cluster must not overwrite each other's release."""
    cluster = cfg.environment.cluster or "default"
    names = {service_name(cfg, svc, preview): svc for svc in cfg.services}
    conflicts: list[str] = []

    def check() -> None:
        listed = list(names)
        for i in range(0, len(listed), 10):  # DescribeServices takes at most 10 services
            for found in ecs_gateway.describe_services(aws.ecs, cluster, listed[i:i + 10], tags=True):
                if found.status == "INACTIVE" or found.name not in names:
                    continue
                owner = owner_conflict(cfg, names[found.name], preview, found.tags)
                if owner:
                    conflicts.append(f"{found.name} (tagged {owner})")

    _guard(rep, f"who owns the ECS services in {cluster}", check)
    if not conflicts:
        return
    me = f"{cfg.app}/{cfg.env_name}" + (f" preview {preview}" if preview else "")
    raise ServiceOwnedElsewhere(
        f"refusing to deploy {me}: ECS service{'s' if len(conflicts) > 1 else ''} {', '.join(conflicts)} in "
        f"cluster {cluster} belong{'s' if len(conflicts) == 1 else ''} to another app or environment, "
        "according to deployctl's tags; updating it would replace that environment's release. "
        "Nothing was registered or changed.",
        hint="give this environment its own ECS service names (keep {env} in deploy.service_name) or its own "
             "cluster; see docs/environments.md")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def bootstrap_hint(cfg: ResolvedConfig) -> str:
    """What to say after a problem `deployctl bootstrap` can fix: it creates the cluster (with its
    capacity providers), the network, target groups, roles and queues (docs/bootstrap.md)."""
    if cfg.environment.preview:
        return " (or bootstrap the environment this preview runs in: `deployctl bootstrap --env ENV`)"
    return f" (or let `deployctl bootstrap --env {cfg.env_name}` create it: docs/bootstrap.md)"


def _check_cluster(cfg: ResolvedConfig, aws: awsa.AwsClients, rep: _Report) -> None:
    name = cfg.environment.cluster or "default"

    def check() -> None:
        resp = aws.ecs.describe_clusters(clusters=[name], include=["SETTINGS"])
        clusters = [c for c in resp.get("clusters", []) if c.get("status") != "INACTIVE"]
        if not clusters:
            rep.problems.append(f"ECS cluster {name} does not exist in {cfg.region}: create it, or fix "
                                "environment.cluster" + bootstrap_hint(cfg))
            return
        cluster = clusters[0]
        if cluster.get("status") not in ("ACTIVE", None):
            rep.problems.append(f"ECS cluster {name} is {cluster.get('status')}, not ACTIVE: wait until it is, "
                                "or fix environment.cluster")
        # Every service asks for a capacity provider (FARGATE, or FARGATE_SPOT with spot: true), and ECS
        # takes only providers associated with the cluster, so a cluster without any fails them all.
        # A Spot job's schedule asks for FARGATE_SPOT too (a job without Spot uses the FARGATE launch
        # type, which needs no provider): its runs would fail at RunTask, long after the deploy.
        providers = set(cluster.get("capacityProviders") or [])
        need: dict[str, list[str]] = {}
        for svc_name, svc in cfg.services.items():
            need.setdefault("FARGATE_SPOT" if svc.spot else "FARGATE", []).append(f"service {svc_name}")
        for job_name, job in (getattr(cfg, "jobs", None) or {}).items():
            if job.spot:
                need.setdefault("FARGATE_SPOT", []).append(f"job {job_name}")
        for p in sorted(set(need) - providers):
            has = f"it has {', '.join(sorted(providers))}" if providers else "it has none"
            keys = [f"{'services' if n.startswith('service ') else 'jobs'}.{n.split(' ', 1)[1]}" for n in need[p]]
            fix = f" or set spot: false on {', '.join(keys)}" if p == "FARGATE_SPOT" else ""
            rep.problems.append(
                f"ECS cluster {name} lacks the {p} capacity provider that "
                f"{', '.join(need[p])} need{'' if len(need[p]) > 1 else 's'} ({has}): add it with `aws ecs "
                f"put-cluster-capacity-providers --cluster {name} --capacity-providers "
                f"{' '.join(sorted(providers | {p}))} --default-capacity-provider-strategy "
                f"capacityProvider=FARGATE,weight=1`{fix}" + bootstrap_hint(cfg))
        _check_container_insights(cfg, cluster, rep)

    _guard(rep, f"ECS cluster {name}", check)


def _backlog_queues(cfg: ResolvedConfig) -> dict[str, str]:
    """Service → the SQS queue its queue-backlog policy scales on (autoscaling.queue)."""
    return {name: svc.autoscaling.queue for name, svc in cfg.services.items()
            if svc.autoscaling is not None and svc.autoscaling.queue is not None
            and svc.autoscaling.queue_backlog_per_task is not None}


def _check_container_insights(cfg: ResolvedConfig, cluster: Mapping[str, Any], rep: _Report) -> None:
    """The queue-backlog policy divides by RunningTaskCount, a Container Insights metric: with
    Container Insights off it has no data and the policy never scales (docs/autoscaling.md)."""
    users = sorted(_backlog_queues(cfg))
    if not users:
        return
    name = cluster.get("clusterName") or cfg.environment.cluster or "default"
    settings = {s.get("name"): s.get("value") for s in cluster.get("settings") or []}
    value = settings.get("containerInsights")
    if value is None:
        rep.notes.append(f"could not read Container Insights of ECS cluster {name}: the queue-backlog policy of "
                         f"{', '.join(users)} scales only if it is on (docs/autoscaling.md)")
        return
    if value not in ("enabled", "enhanced"):
        rep.problems.append(
            f"ECS cluster {name} has Container Insights {value}: the queue-backlog policy of service"
            f"{'s' if len(users) > 1 else ''} {', '.join(users)} divides by RunningTaskCount (ECS/ContainerInsights), "
            f"which has no data without it, so it would never scale: turn it on with `aws ecs "
            f"update-cluster-settings --cluster {name} --settings name=containerInsights,value=enabled`, or drop "
            f"{', '.join(f'services.{u}.autoscaling.queue' for u in users)} (clusters `deployctl bootstrap` "
            "creates have it on)")


def _check_network(cfg: ResolvedConfig, aws: awsa.AwsClients, rep: _Report) -> None:
    net = cfg.environment.network
    if net is None:
        return
    for kind, ids, call, key in (
        ("subnet", net.subnets, "describe_subnets", "SubnetIds"),
        ("security group", net.security_groups, "describe_security_groups", "GroupIds"),
    ):
        for ident in ids:
            def check(ident: str = ident, kind: str = kind, call: str = call, key: str = key) -> None:
                try:
                    getattr(aws.ec2, call)(**{key: [ident]})
                except awsa.ClientError as exc:
                    if (awsa.error_code(exc) or "").endswith(".NotFound") or awsa.is_not_found(exc):
                        rep.problems.append(f"{kind} {ident} does not exist in {cfg.region}: create it, or fix "
                                            "environment.network" + bootstrap_hint(cfg))
                        return
                    raise

            _guard(rep, f"{kind} {ident}", check)


def _default_registry_check(image_ref: str) -> tuple[str | None, str | None]:
    ref = registry.ImageRef.parse(image_ref)
    try:
        digest = registry.RegistryClient(ref.registry).manifest_digest(ref.repository, ref.reference)
    except ExternalError as exc:
        return None, f"could not ask {ref.registry} about the image ({exc.message}); not checked"
    return digest, None if digest else "absent"


def _check_image(cfg: ResolvedConfig, aws: awsa.AwsClients, image_ref: str, rep: _Report, result: PreflightResult,
                 registry_check: Callable[[str], tuple[str | None, str | None]] | None) -> None:
    try:
        ref = registry.ImageRef.parse(image_ref)
        host, repo, tag, digest = ref.registry, ref.repository, ref.tag, ref.digest
    except UsageError as exc:
        rep.problems.append(str(exc.message))
        return
    m = ECR_HOST.match(host)
    if m:
        registry_id, region = m.group(1), m.group(2)

        def check() -> None:
            ecr = aws.ecr if region == cfg.region else awsa.clients(region).ecr
            found = awsa.ecr_image_digest(ecr, repo, tag=tag, digest=digest, registry_id=registry_id)
            if found is None:
                rep.problems.append(f"image {image_ref} is not in ECR (repository {repo} in {region}, "
                                    f"account {registry_id}): push it (`deployctl run` builds and pushes), or "
                                    "fix the image reference")
                return
            result.image_digest = found
            result.image_ref = f"{host}/{repo}@{found}"

        _guard(rep, f"image {image_ref}", check)
        return
    found, note = (registry_check or _default_registry_check)(image_ref)
    if found:
        result.image_digest = found
        result.image_ref = f"{host}/{repo}@{found}"
    elif note == "absent":
        rep.problems.append(f"image {image_ref} is not in registry {host}: push it (`deployctl run` builds and "
                            "pushes), or fix the image reference")
    elif note:
        rep.notes.append(note)
        result.image_digest = digest


def _secret_refs(cfg: ResolvedConfig) -> dict[str, list[str]]:
    refs: dict[str, list[str]] = {}
    for svc_name, svc in cfg.services.items():
        for env_name, ref in svc.secrets.items():
            refs.setdefault(ref, []).append(f"{svc_name}.{env_name}")
    return refs


def _check_secrets(cfg: ResolvedConfig, aws: awsa.AwsClients, rep: _Report, result: PreflightResult) -> None:
    described: dict[str, dict[str, Any] | None] = {}  # secret → DescribeSecret answer (None: absent)
    for ref, users in _secret_refs(cfg).items():
        used = f" (used by {', '.join(users)})"
        name = ssm_name(ref)
        if name is not None:
            def check_ssm(ref: str = ref, name: str = name, used: str = used) -> None:
                resp = aws.ssm.describe_parameters(
                    ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}])
                params = resp.get("Parameters") or []
                if not params:
                    rep.problems.append(f"SSM parameter {name} does not exist{used}: create it (`aws ssm "
                                        f"put-parameter --name {name} --type SecureString --value …`), or fix "
                                        "the reference in deploy.yaml")
                elif params[0].get("ARN"):
                    result.secret_arns[ref] = str(params[0]["ARN"])

            _guard(rep, f"SSM parameter {name}", check_ssm)
            continue

        secret, suffix = split_secret_ref(ref)
        fields = suffix[1:].split(":") if suffix else []
        if len(fields) > 3:
            rep.problems.append(f"secret reference {ref}{used} has more than json-key:version-stage:version-id "
                                "after the secret")
            continue

        def check_sm(ref: str = ref, secret: str = secret, fields: list[str] = fields, used: str = used) -> None:
            # DescribeSecret takes the secret alone; ECS reads the JSON key and version from the rest.
            if secret not in described:
                try:
                    described[secret] = aws.secretsmanager.describe_secret(SecretId=secret)
                except awsa.ClientError as exc:
                    if awsa.is_not_found(exc):
                        described[secret] = None
                    else:
                        raise
            resp = described[secret]
            if resp is None:
                rep.problems.append(f"Secrets Manager secret {secret} does not exist{used}: create it (`aws "
                                    f"secretsmanager create-secret --name {secret}`), or fix the reference in "
                                    "deploy.yaml")
                return
            if resp.get("DeletedDate"):
                rep.problems.append(f"Secrets Manager secret {secret} is scheduled for deletion{used}")
                return
            result.secret_arns[ref] = str(resp["ARN"])
            _check_secret_version(secret, fields, resp, rep, used)

        _guard(rep, f"secret {secret}", check_sm)


def _check_secret_version(secret: str, fields: list[str], resp: dict[str, Any], rep: _Report, used: str) -> None:
    """A version stage or id in the reference must name a version of the secret. The JSON key is not
    checked: that needs the secret's value, which deployctl never reads."""
    versions = resp.get("VersionIdsToStages")
    if not versions or not any("AWSCURRENT" in stages for stages in versions.values()):
        # A placeholder (`bootstrap --create-secrets`) or a secret whose value was never set: ECS
        # could not start a task from it (ResourceInitializationError). Read from metadata only.
        rep.problems.append(f"Secrets Manager secret {secret} has no value yet{used}: set it (`aws secretsmanager "
                            f"put-secret-value --secret-id {secret} --secret-string …`)")
        return
    stage = fields[1] if len(fields) > 1 else ""
    version_id = fields[2] if len(fields) > 2 else ""
    if stage and not any(stage in stages for stages in versions.values()):
        rep.problems.append(f"Secrets Manager secret {secret} has no version labelled {stage}{used}")
    if version_id and version_id not in versions:
        # DescribeSecret lists only versions with a staging label; an unlabelled one may still
        # exist until Secrets Manager deletes it.
        rep.notes.append(f"secret {secret} lists no labelled version {version_id}{used}; if it was "
                         "deprecated, Secrets Manager may delete it and tasks would fail to start")


def _check_target_groups(cfg: ResolvedConfig, aws: awsa.AwsClients, rep: _Report, result: PreflightResult) -> None:
    seen: set[str] = set()
    for svc_name, svc in cfg.services.items():
        if not svc.load_balancer or svc.load_balancer.target_group in seen:
            continue
        tg = svc.load_balancer.target_group
        seen.add(tg)

        def check(tg: str = tg, svc_name: str = svc_name) -> None:
            kwargs = {"TargetGroupArns": [tg]} if tg.startswith("arn:") else {"Names": [tg]}
            try:
                groups = aws.elbv2.describe_target_groups(**kwargs).get("TargetGroups") or []
            except awsa.ClientError as exc:
                if awsa.is_not_found(exc):
                    groups = []
                else:
                    raise
            if not groups:
                rep.problems.append(f"target group {tg} does not exist (service {svc_name}): create it (target "
                                    f"type ip), or fix services.{svc_name}.load_balancer.target_group"
                                    + bootstrap_hint(cfg))
                return
            group = groups[0]
            result.target_group_arns[tg] = str(group["TargetGroupArn"])
            if group.get("TargetType") not in (None, "ip"):
                rep.problems.append(f"target group {tg} has target type {group.get('TargetType')}; "
                                    "Fargate tasks (awsvpc) need target type ip")
            if not group.get("LoadBalancerArns"):
                rep.problems.append(f"target group {tg} is not attached to a load balancer (add a "
                                    "listener rule); ECS refuses services on a detached target group"
                                    + bootstrap_hint(cfg))

        _guard(rep, f"target group {tg}", check)


def _check_roles(cfg: ResolvedConfig, aws: awsa.AwsClients, rep: _Report) -> None:
    roles = cfg.environment.roles
    if roles is None:
        return
    for kind, arn in (("execution", roles.execution), ("task", roles.task)):
        if not arn:
            continue
        name = role_name(arn)

        def check(kind: str = kind, arn: str = arn, name: str = name) -> None:
            try:
                aws.iam.get_role(RoleName=name)
            except awsa.ClientError as exc:
                if awsa.is_not_found(exc):
                    rep.problems.append(f"IAM {kind} role {name} does not exist ({arn}): create it (`deployctl "
                                        f"iam-policy` shows the CI role; see docs/security.md), or fix "
                                        f"environment.roles.{kind}" + bootstrap_hint(cfg))
                    return
                raise

        _guard(rep, f"IAM {kind} role {name}", check)


def _check_alarms(cfg: ResolvedConfig, aws: awsa.AwsClients, rep: _Report, result: PreflightResult) -> None:
    names = list(dict.fromkeys(cfg.deploy.alarms))
    if not names:
        return

    def check() -> None:
        found: dict[str, str] = {}
        for i in range(0, len(names), 100):
            resp = aws.cloudwatch.describe_alarms(AlarmNames=names[i:i + 100])
            for alarm in resp.get("MetricAlarms", []) + resp.get("CompositeAlarms", []):
                found[str(alarm["AlarmName"])] = str(alarm.get("StateValue", ""))
        for name in names:
            if name not in found:
                rep.problems.append(f"CloudWatch alarm {name} does not exist: create it, or remove it from "
                                    "deploy.alarms")
            elif found[name] == "ALARM":
                rep.notes.append(f"alarm {name} is already in ALARM: ECS ignores an alarm that is firing "
                                 "when the deployment starts, so it will not protect this rollout")
        result.alarm_states = found

    _guard(rep, "deployment alarms", check)


def _check_queue(cfg: ResolvedConfig, aws: awsa.AwsClients, rep: _Report) -> None:
    """The SQS queues deploy.yaml names must exist. monitoring.queue: an alarm on a queue that does
    not exist never fires (no data is `notBreaching`), so a typo would silently guard nothing.
    services.<name>.autoscaling.queue: a backlog policy on a missing queue has no data and never
    scales. Each queue is asked once; its line names every key that uses it."""
    users: dict[str, list[str]] = {}
    mon = getattr(cfg, "monitoring", None)
    if mon is not None and mon.queue is not None:
        users.setdefault(mon.queue.name, []).append("monitoring.queue.name")
    for svc, queue in _backlog_queues(cfg).items():
        users.setdefault(queue, []).append(f"services.{svc}.autoscaling.queue")
    for name, keys in users.items():
        # bootstrap creates monitoring.queue's queue and bootstrap.queues; autoscaling.queue alone, not.
        hint = bootstrap_hint(cfg) if "monitoring.queue.name" in keys else \
            f" (or list it in bootstrap.queues and run `deployctl bootstrap --env {cfg.env_name}`)"

        def check(name: str = name, keys: list[str] = keys, hint: str = hint) -> None:
            try:
                aws.client("sqs").get_queue_url(QueueName=name)
            except awsa.ClientError as exc:
                code = awsa.error_code(exc) or ""
                if awsa.is_not_found(exc) or code.endswith(("NonExistentQueue", "QueueDoesNotExist")):
                    rep.problems.append(f"SQS queue {name} does not exist in {cfg.region} ({', '.join(keys)}): "
                                        f"create it (`aws sqs create-queue --queue-name {name}`), or fix "
                                        f"{' / '.join(keys)}" + hint)
                    return
                raise

        _guard(rep, f"SQS queue {name}", check)


def failed(cfg: ResolvedConfig, problems: list[str]) -> PreflightFailed:
    """The one error for every problem found: the message lists them one per line, `problems`
    carries them as a list for renderers that lay them out themselves."""
    n = len(problems)
    lines = "\n".join(f"  - {p}" for p in problems)
    return PreflightFailed(
        f"preflight found {n} problem{'s' if n != 1 else ''} in {cfg.region} for env {cfg.env_name}; "
        f"nothing was changed:\n{lines}",
        hint="create or fix each one as it says, then run again", problems=problems)
