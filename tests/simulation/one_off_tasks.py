"""SIMULATION of one-off Fargate tasks (RunTask), served by the real moto server.

Why: moto 5.2.1 does not run containers. Its RunTask answers tasks that start RUNNING, move one
lifecycle step per DescribeTasks, and report `exitCode` 0 for every container whatever the
command; and for an `awsvpc` task definition (every Fargate one) its RunTask fails with an
internal error (its network-interface model lacks `private_dns_name`). It also refuses a
`capacityProviderStrategy` without EC2 container instances. So `task run` and `before_deploy`
tests script what the task does instead, written from the ECS documentation of the task
lifecycle (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-lifecycle-explanation.html)
and of stopped tasks (stopCode `EssentialContainerExited`, `UserInitiated`, `TaskFailedToStart`:
https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Task.html).

What a scripted task does (wall-clock seconds from its RunTask):
  PROVISIONING → PENDING at start_s/2 → RUNNING at start_s: its output lines go into moto's
  CloudWatch Logs, in the stream the awslogs driver would use (prefix/container/task-id, the
  group created when the task definition says awslogs-create-group) → STOPPED at start_s +
  run_s with the scripted exit code (stopCode EssentialContainerExited).
  `fail_to_start="…"`: STOPPED at start_s with stopCode TaskFailedToStart, that reason, no exit code.
  StopTask: STOPPED at once, exit code 143 (SIGTERM), stopCode UserInitiated.
Assumed (no AWS source): the 143 of a stopped container (128 + SIGTERM), and that all lines
are in CloudWatch Logs when the task shows STOPPED (real ingestion can lag a few seconds; the
runner reads the stream again after the stop for that reason).

Only real AWS shows: placement (subnets, capacity, Fargate Spot), image pulls, secrets
injection, IAM (iam:PassRole of the roles, ecs:RunTask conditions), log delivery delays.

Patched (restored by ``uninstall``): ``EC2ContainerServiceResponse.run_task``, ``describe_tasks``
and ``stop_task``; other tasks go to whatever handled them before (moto, or the rollout
simulation when it is installed first).
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Script:
    exit_code: int = 0
    lines: tuple[str, ...] = ()
    start_s: float = 0.2
    run_s: float = 0.3
    fail_to_start: str | None = None


@dataclass
class OneOffTask:
    arn: str
    id: str
    cluster: str
    account: str
    region: str
    task_definition_arn: str
    container: str
    command: list[str]
    request: dict[str, Any]
    script: Script
    created: float
    log: tuple[str, str, bool] | None  # (group, stream, create group) when the container logs with awslogs
    stopped_at: float | None = None
    exit_code: int | None = None
    stop_code: str = ""
    stopped_reason: str = ""
    logged: bool = False

    def status(self, now: float) -> str:
        if self.stopped_at is not None and now >= self.stopped_at:
            return "STOPPED"
        if now >= self.created + self.script.start_s:
            return "RUNNING"
        return "PENDING" if now >= self.created + self.script.start_s / 2 else "PROVISIONING"


@dataclass
class OneOffTasks:
    scripts: list[Script] = field(default_factory=list)
    tasks: dict[str, OneOffTask] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _originals: list[tuple[Any, str, Any]] = field(default_factory=list)

    def script(self, *scripts: Script) -> None:
        """What the next RunTask calls do, in order; the last one repeats."""
        with self.lock:
            self.scripts.extend(scripts)

    # ---- install --------------------------------------------------------------------------
    def install(self) -> None:
        from moto.ecs.responses import EC2ContainerServiceResponse as R

        for name, handler in (("run_task", self._run_task), ("describe_tasks", self._describe_tasks),
                              ("stop_task", self._stop_task)):
            original = R.__dict__[name]
            self._originals.append((R, name, original))
            setattr(R, name, self._wrap(handler, original))

    def uninstall(self) -> None:
        while self._originals:
            owner, name, original = self._originals.pop()
            setattr(owner, name, original)

    def _wrap(self, handler: Any, original: Any) -> Any:
        @functools.wraps(original)
        def method(response: Any) -> Any:
            with self.lock:
                return handler(response, original)

        return method

    # ---- handlers ---------------------------------------------------------------------------
    def _run_task(self, response: Any, original: Any) -> Any:
        from moto.core.responses import ActionResult
        from moto.ecs.exceptions import InvalidParameterException

        backend = response.ecs_backend
        cluster = backend._get_cluster(response._get_param("cluster", "default"))  # ClusterNotFound like ECS
        td = backend.describe_task_definition(response._get_param("taskDefinition"))  # ClientException if missing
        overrides = response._get_param("overrides") or {}
        container_overrides = overrides.get("containerOverrides") or []
        names = [c["name"] for c in td.container_definitions]
        for c in container_overrides:
            if c.get("name") not in names:
                raise InvalidParameterException(f"Override for container named {c.get('name')} is not a container "
                                                "in the TaskDefinition.")
        if td.network_mode == "awsvpc" and not response._get_param("networkConfiguration"):
            raise InvalidParameterException("Network Configuration must be provided when networkMode 'awsvpc' "
                                            "is specified.")
        request = {k: response._get_param(k) for k in ("cluster", "taskDefinition", "count", "startedBy",
                                                       "launchType", "capacityProviderStrategy",
                                                       "platformVersion", "networkConfiguration", "overrides")}
        self.requests.append(request)
        script = self.scripts.pop(0) if len(self.scripts) > 1 else (self.scripts[0] if self.scripts else Script())
        container = (container_overrides[0]["name"] if container_overrides else names[0])
        definition = next(c for c in td.container_definitions if c["name"] == container)
        command = next((c.get("command") for c in container_overrides if c.get("name") == container), None) \
            or definition.get("command") or []
        task_id = uuid.uuid4().hex
        arn = f"arn:aws:ecs:{response.region}:{response.current_account}:task/{cluster.name}/{task_id}"
        log = None
        conf = definition.get("logConfiguration") or {}
        opts = conf.get("options") or {}
        if conf.get("logDriver") == "awslogs" and opts.get("awslogs-stream-prefix"):
            log = (opts["awslogs-group"], f"{opts['awslogs-stream-prefix']}/{container}/{task_id}",
                   str(opts.get("awslogs-create-group")).lower() == "true")
        task = OneOffTask(arn, task_id, cluster.name, response.current_account, response.region, td.arn, container,
                          list(command), request, script, time.monotonic(), log)
        if script.fail_to_start is not None:
            task.stopped_at, task.stop_code = task.created + script.start_s, "TaskFailedToStart"
            task.stopped_reason = script.fail_to_start
        else:
            task.stopped_at = task.created + script.start_s + script.run_s
            task.exit_code, task.stop_code = script.exit_code, "EssentialContainerExited"
            task.stopped_reason = "Essential container in task exited"
        self.tasks[arn] = task
        return ActionResult({"tasks": [self._render(task)], "failures": []})

    def _describe_tasks(self, response: Any, original: Any) -> Any:
        from moto.core.responses import ActionResult

        refs = [str(r) for r in response._get_param("tasks", []) or []]
        mine = [self._find(r) for r in refs]
        if not refs or not all(mine):
            return original(response)
        return ActionResult({"tasks": [self._render(t) for t in mine if t], "failures": []})

    def _stop_task(self, response: Any, original: Any) -> Any:
        from moto.core.responses import ActionResult

        task = self._find(str(response._get_param("task") or ""))
        if task is None:
            return original(response)
        now = time.monotonic()
        if task.status(now) != "STOPPED":
            running = task.status(now) == "RUNNING"
            task.stopped_at, task.stop_code = now, "UserInitiated"
            task.stopped_reason = response._get_param("reason") or "Task stopped by user"
            task.exit_code = 143 if running else None
        return ActionResult({"task": self._render(task)})

    def _find(self, ref: str) -> OneOffTask | None:
        return self.tasks.get(ref) or next((t for t in self.tasks.values() if t.id == ref.split("/")[-1]), None)

    # ---- what a task shows ------------------------------------------------------------------
    def _write_log(self, task: OneOffTask) -> None:
        if task.logged or task.log is None or task.script.fail_to_start is not None:
            return
        from moto.logs.models import logs_backends

        task.logged = True
        group, stream, create = task.log
        backend = logs_backends[task.account][task.region]
        if group not in backend.groups:
            if not create:
                return
            backend.create_log_group(group, {})
        backend.create_log_stream(group, stream)
        now = int(time.time() * 1000)
        if task.script.lines:
            backend.put_log_events(group, stream, [{"timestamp": now + i, "message": m}
                                                   for i, m in enumerate(task.script.lines)])

    def _render(self, task: OneOffTask) -> dict[str, Any]:
        now = time.monotonic()
        status = task.status(now)
        if status in ("RUNNING", "STOPPED"):
            self._write_log(task)
        container: dict[str, Any] = {"name": task.container, "taskArn": task.arn,
                                     "lastStatus": "PENDING" if status in ("PROVISIONING", "PENDING") else status}
        out: dict[str, Any] = {"taskArn": task.arn, "taskDefinitionArn": task.task_definition_arn,
                               "clusterArn": f"arn:aws:ecs:{task.region}:{task.account}:cluster/{task.cluster}",
                               "lastStatus": status, "desiredStatus": "STOPPED" if status == "STOPPED" else "RUNNING",
                               "startedBy": task.request.get("startedBy") or "", "group": "",
                               "launchType": task.request.get("launchType") or "FARGATE",
                               "overrides": task.request.get("overrides") or {}, "containers": [container]}
        if status == "STOPPED":
            out["stopCode"], out["stoppedReason"] = task.stop_code, task.stopped_reason
            if task.exit_code is not None:
                container["exitCode"] = task.exit_code
            if task.stop_code == "TaskFailedToStart":
                container["reason"] = task.stopped_reason
        return out
