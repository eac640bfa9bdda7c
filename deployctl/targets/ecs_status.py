"""`status` of an ECS environment: per service what runs (release, revision, digest), its
rollout, target health and recent events, as deployctl.status/v1 and as text."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from deployctl import releases, rollout
from deployctl import releases_tags as rt
from deployctl.adapters import ecs_gateway, elb_gateway
from deployctl.adapters.ecs_gateway import Deployment, ServiceEvent, ServiceState
from deployctl.render import ecs as render
from deployctl.render.status_doc import status_current_doc, status_doc, status_service_doc
from deployctl.render.text import outcome_text, short
from deployctl.targets import ecs_costcap
from deployctl.targets.base import StatusView
from deployctl.targets.ecs_releases import read_revisions, read_services, running_arns, settle_revisions

if TYPE_CHECKING:
    from deployctl.adapters.aws import AwsClients
    from deployctl.config.model import ResolvedConfig
    from deployctl.releases import Release, Revision


# A service without a PRIMARY deployment shows zero counts and no rollout state.
_NO_DEPLOYMENT = Deployment(id="", status="")


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    ecs_service: str
    exists: bool
    release: str = ""
    outcome: str = ""
    image_digest: str = ""
    image: str = ""
    git_sha: str = ""
    task_definition: str = ""
    revision: int | None = None
    running: int = 0
    desired: int = 0
    pending: int = 0
    rollout_state: str = ""
    rollout_reason: str = ""
    deployments: tuple[Deployment, ...] = ()
    targets: dict[str, int] | None = None
    events: tuple[ServiceEvent, ...] = ()  # the newest few
    # Set when the newest release of this service is not what runs (ECS or deployctl rolled it back).
    superseded_by_rollback: str = ""
    # monitoring.cost_cap stopped it (deployctl.targets.ecs_costcap.stopped_by_cap): why we think so.
    stopped_by_cost_cap: str = ""

    @property
    def settled(self) -> bool:
        if not self.exists:
            return True
        if self.rollout_state == "FAILED":
            return True
        return self.rollout_state == "COMPLETED" and len(self.deployments) == 1

    @property
    def ok(self) -> bool:
        return self.exists and self.rollout_state == "COMPLETED" and not self.superseded_by_rollback

    def to_json(self) -> dict[str, Any]:
        return status_service_doc(
            service=self.service, exists=self.exists, release=self.release or None, outcome=self.outcome or None,
            image_digest=self.image_digest or None, image=self.image or None, git_sha=self.git_sha or None,
            running=self.running, desired=self.desired,
            healthy=self.targets.get("healthy", 0) if self.targets is not None else None,
            rolled_back=self.superseded_by_rollback or None,
            ecs_service=self.ecs_service, task_definition=self.task_definition or None, revision=self.revision,
            pending=self.pending, rollout_state=self.rollout_state or None,
            rollout_reason=self.rollout_reason or None, deployments=[_deployment_doc(d) for d in self.deployments],
            targets=self.targets, events=[_event_doc(e) for e in self.events],
            stopped_by_cost_cap=bool(self.stopped_by_cost_cap))


@dataclass(frozen=True)
class EcsStatus:
    services: list[ServiceStatus]
    current: Release | None = None  # the newest release among the revisions the services run
    preview: str | None = None  # the preview copy it is the status of

    @property
    def settled(self) -> bool:
        return all(s.settled for s in self.services)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.services)


def _deployment_doc(d: Deployment) -> dict[str, Any]:
    """One `deployments` entry of deployctl.status/v1 (null where ECS says nothing)."""
    return {"id": d.id or None, "status": d.status or None, "task_definition": d.task_definition.rsplit("/", 1)[-1],
            "rollout_state": d.rollout_state or None, "running": d.running, "desired": d.desired,
            "failed_tasks": d.failed_tasks}


def _event_at(e: ServiceEvent) -> str:
    """An event's time as ISO 8601 in the local time zone, as boto3 gives it ("" when unknown)."""
    return datetime.fromtimestamp(e.created_at).astimezone().isoformat() if e.created_at else ""


def _event_doc(e: ServiceEvent) -> dict[str, str]:
    """One `events` entry of deployctl.status/v1."""
    return {"at": _event_at(e), "message": e.message}


def read_status(clients: AwsClients, cfg: ResolvedConfig, preview: str | None = None) -> EcsStatus:
    """What the environment's services (or those of its preview copy `preview`) run now."""
    described = read_services(clients.ecs, cfg, preview)
    revs = settle_revisions(clients, cfg, read_revisions(clients.ecs, cfg, per_family=3, preview=preview,
                                                         also=running_arns(described)),
                            described, preview=preview)
    by_arn = {r.arn: r for r in revs}
    out = []
    running: dict[str, Revision] = {}
    for name, state in described.items():
        ecs_name = render.service_name(cfg, name, preview)
        if state is None:
            out.append(ServiceStatus(name, ecs_name, exists=False))
            continue
        view = releases.service_view(name, state)
        arn = str(view.task_definition or "")
        rev = by_arn.get(arn)
        if rev is None and arn:  # not deployctl's family: read what it says about itself
            rev = next(reversed(releases.revisions_from(ecs_gateway.describe_task_definition(clients.ecs, arn))), None)
        if rev is not None:
            running[name] = rev
        primary = state.primary or _NO_DEPLOYMENT
        newest = max((r for r in revs if r.service == name), key=lambda r: r.number, default=None)
        rolled = ""
        if newest is not None and newest.arn != arn and newest.outcome in (rt.IN_PROGRESS, rt.ROLLED_BACK, rt.FAILED):
            rolled = (f"release {newest.parsed.release} ({newest.label}, {outcome_text(newest.outcome)}) "
                      f"is not what runs: the service went back to {arn.rsplit('/', 1)[-1]}")
        out.append(ServiceStatus(
            service=name, ecs_service=ecs_name, exists=True,
            release=(rev.parsed.release or "") if rev else "", outcome=rev.outcome if rev else "",
            image_digest=(rev.parsed.image_digest or "") if rev else "",
            image=rev.image if rev else "", git_sha=(rev.parsed.git_sha or "") if rev else "",
            task_definition=arn, revision=rev.number if rev else None,
            running=primary.running, desired=primary.desired, pending=primary.pending,
            rollout_state=primary.rollout_state, rollout_reason=primary.reason,
            deployments=state.deployments,
            targets=_target_health(clients, cfg.environment.cluster, state),
            events=state.events[:5],
            superseded_by_rollback=rolled,
        ))
    if preview is None:
        desired = {s.service: s.desired for s in out if s.exists}
        why = ecs_costcap.stopped_by_cap(clients.cloudwatch, clients.client(ecs_costcap.AUTOSCALING), cfg, desired)
        out = [dataclasses.replace(s, stopped_by_cost_cap=why[s.service]) if s.service in why else s for s in out]
    known = releases.build([*revs, *(r for r in running.values() if r.arn not in by_arn)], app=cfg.app,
                           env=cfg.env_name)
    return EcsStatus(out, releases.current(known, {n: r.arn for n, r in running.items()}), preview)


def _target_health(clients: AwsClients, cluster: str | None, svc: ServiceState) -> dict[str, int] | None:
    """Target states of this service's own tasks (by their awsvpc IPs): a target group shared
    with another environment must not make one environment count the other's targets."""
    groups = svc.target_groups
    if not groups:
        return None
    arns = ecs_gateway.task_arns(clients.ecs, cluster, service=svc.name)
    ips = rollout.task_ips(ecs_gateway.describe_tasks(clients.ecs, cluster, arns))
    counts: dict[str, int] = {}
    for arn in groups:
        for t in rollout.own_targets(elb_gateway.target_health(clients.elbv2, arn), ips):
            state = t.state or "unknown"
            counts[state] = counts.get(state, 0) + 1
    return counts


def render_status(cfg: ResolvedConfig, rows: list[ServiceStatus], preview: str | None = None) -> list[str]:
    copy = f" preview {preview}" if preview else ""
    lines = [f"{cfg.app}/{cfg.env_name}{copy} on cluster {cfg.environment.cluster}"]
    for s in rows:
        if not s.exists:
            lines.append(f"{s.service}: service {s.ecs_service} does not exist (never deployed)")
            continue
        targets = ""
        if s.targets is not None:
            targets = ", targets " + (", ".join(f"{n} {k}" for k, n in sorted(s.targets.items())) or "none")
        lines.append(f"{s.service}: release {s.release or '?'} ({outcome_text(s.outcome) or 'no tags'}), "
                     f"{s.task_definition.rsplit('/', 1)[-1]}, {short(s.image_digest)}")
        lines.append(f"  running {s.running}/{s.desired} (pending {s.pending}), rollout "
                     f"{(s.rollout_state or '?').lower()}{targets}"
                     + (f" — {s.rollout_reason}" if s.rollout_reason else ""))
        if len(s.deployments) > 1:
            for d in s.deployments:  # as the JSON says it: an absent value reads "none"
                lines.append(f"  deployment {d.id or None}: {str(d.status or None).lower()} "
                             f"{d.task_definition.rsplit('/', 1)[-1]} {str(d.rollout_state or None).lower()} "
                             f"{d.running}/{d.desired}")
        if s.superseded_by_rollback:
            lines.append(f"  {s.superseded_by_rollback}")
        if s.stopped_by_cost_cap:
            lines.append(f"  stopped by cost cap ({s.stopped_by_cost_cap}): `deployctl resume --env {cfg.env_name}` "
                         "brings it back")
        for e in s.events:
            lines.append(f"  {_event_at(e)[:19]}  {e.message}")
    return lines



def view(cfg: ResolvedConfig, st: EcsStatus) -> StatusView:
    """deployctl.status/v1, the text and the verdict words of one ECS status."""
    cur = st.current
    doc = status_doc(app=cfg.app, env=cfg.env_name, target="ecs", cluster=cfg.environment.cluster,
                     settled=st.settled, ok=st.ok,
                     current=status_current_doc(
                         id=cur.id, outcome=cur.outcome, kind=cur.kind, git_sha=cur.git_sha or None,
                         image_digest=cur.image_digest or None, started_at=cur.started_at or None,
                         finished_at=cur.finished_at or None) if cur else None,
                     services=[s.to_json() for s in st.services])
    problems = tuple(
        f"{s.service} " + (s.superseded_by_rollback or f"rollout {(s.rollout_state or 'unknown').lower()}"
                           + (f" ({s.rollout_reason})" if s.rollout_reason else ""))
        for s in st.services if not s.ok)
    return StatusView(doc=doc, lines=tuple(render_status(cfg, st.services, st.preview)), problems=problems,
                      unsettled="rollouts still not settled", done=f"{cfg.app}/{cfg.env_name}: every rollout completed")
