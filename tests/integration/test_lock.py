"""The deploy lock against moto's DynamoDB, with real `deployctl run` processes.

Deploys run as subprocesses against the in-process moto server (AWS_ENDPOINT_URL), so signals,
process death and two processes racing for the lock are real; the rollout SIMULATION makes the
deploys slow enough to overlap.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from deployctl import lock
from deployctl.errors import LockHeld
from deployctl.pipeline import Cancelled
from tests.integration.conftest import REPO_ROOT
from tests.support.aws_world import API, CLUSTER, RELEASE_PHASES
from tests.support.mid_rollout import calls_after, wait_until
from tests.support.release_project import Project

KEY = "chat-api/staging"
SIM_PHASES = RELEASE_PHASES


def slow(sim: Any, seconds: float = 3.0) -> None:
    """Deployments of the api take about `seconds` to complete."""
    sim.script(API, sim.scenario("success", start_s=seconds / 2, healthy_s=seconds / 2), cluster=CLUSTER)


def start(project: Project, image: str, *extra: str, lease: str | None = None) -> subprocess.Popen[str]:
    # Unbuffered: a test reads the output while the run goes on (Output below).
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    if lease:
        env[lock.LEASE_ENV] = lease
    return subprocess.Popen([sys.executable, "-m", "deployctl", "run", "-f", project.file, "--env", "staging",
                             "--image", image, *extra], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


class Output:
    """A run's output, drained by a thread as it comes, so that a test can wait for a line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self._chunks: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._chunks.append(line)

    @property
    def text(self) -> str:
        return "".join(self._chunks)

    def finish(self, timeout: float) -> int:
        """Waits for the exit and the last line; returns the exit code."""
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code


def item(project: Project) -> dict[str, Any] | None:
    db = project.world.c("dynamodb")
    try:
        return db.get_item(TableName=lock.DEFAULT_TABLE, Key={"pk": {"S": KEY}}, ConsistentRead=True).get("Item")
    except db.exceptions.ResourceNotFoundException:
        return None


def wait_for_lock(project: Project, proc: subprocess.Popen[str], timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = item(project)
        if found is not None:
            return found
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the deploy never took the lock"
        time.sleep(0.05)


def table(project: Project) -> lock.LockTable:
    return lock.LockTable(project.world.c("dynamodb"))


def test_two_concurrent_runs_exactly_one_deploys(project: Project, ecs_sim: Any) -> None:
    slow(ecs_sim)
    # The winner's rollout stands still until one run has exited: on a loaded machine the second
    # process can take longer to start than a whole simulated rollout lasts.
    ecs_sim.freeze_on("CreateService")
    ref = project.world.push("v1")
    procs = [start(project, ref), start(project, ref)]
    outputs = [Output(p) for p in procs]
    wait_until(lambda: any(p.poll() is not None for p in procs), "one of the two runs to exit", timeout=90)
    ecs_sim.thaw()
    results = [(o.finish(timeout=90), o.text) for o in outputs]

    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    loser = next(out for code, out in results if code == 1)
    winner = next(out for code, out in results if code == 0)
    assert "chat-api/staging is locked by another deploy: tester@" in loser
    assert "running `deployctl run -f" in loser and "--lock-wait" in loser and "deployctl unlock" in loser
    assert "Traceback" not in loser
    # The holder's pid is named: it is the winner's.
    winner_pid = next(p.pid for p, (code, _) in zip(procs, results, strict=True) if code == 0)
    assert f"(pid {winner_pid} on " in loser
    assert "deploy lock of chat-api/staging taken" in winner and "released" in winner
    assert len(ecs_sim.calls_of("RegisterTaskDefinition")) == 1 and len(ecs_sim.calls_of("CreateService")) == 1
    assert item(project) is None


def test_lock_wait_waits_for_the_holder(project: Project, ecs_sim: Any) -> None:
    slow(ecs_sim, 2.0)
    # The holder's rollout stands still until the second run reports that it waits: on a loaded
    # machine the second process can take longer to start than the holder's whole deploy.
    ecs_sim.freeze_on("CreateService")
    first = Output(start(project, project.world.push("v1")))
    wait_for_lock(project, first.proc)
    second = Output(start(project, project.world.push("v2"), "--lock-wait", "60s"))
    wait_until(lambda: "waiting for the deploy lock" in second.text or second.proc.poll() is not None,
               "the second run to wait for the lock", timeout=60)
    ecs_sim.thaw()
    first.finish(timeout=90)
    second.finish(timeout=90)
    out1, out2 = first.text, second.text

    assert first.proc.returncode == 0, out1
    assert second.proc.returncode == 0, out2
    assert "waiting for the deploy lock of chat-api/staging: tester@" in out2
    # One after the other: the second update started only after the first rollout completed.
    (created,) = ecs_sim.calls_of("CreateService")
    (updated,) = ecs_sim.calls_of("UpdateService")
    first_done = next(o for o in ecs_sim.outcomes if o.service == API and o.rollout_state == "COMPLETED")
    assert created.monotonic < first_done.monotonic < updated.monotonic


def test_sigkill_leaves_a_lock_that_expires(project: Project, ecs_sim: Any) -> None:
    slow(ecs_sim, 6.0)
    proc = start(project, project.world.push("v1"), lease="2s")
    held = wait_for_lock(project, proc)
    assert held["command"]["S"].startswith("deployctl run -f") and held["who"]["S"].startswith("tester@")
    assert held["release"]["S"] and int(held["pid"]["N"]) == proc.pid
    # The heartbeat keeps extending a 2 s lease while the deploy lives.
    time.sleep(2.5)
    assert float(item(project)["expires_at"]["N"]) > time.time()  # type: ignore[index]

    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    killed_at = time.time()
    assert item(project) is not None  # nobody released it…
    with pytest.raises(LockHeld) as refused, lock.hold(table(project), "chat-api", "staging", lease=2):
        pass
    assert f"(pid {proc.pid} on " in refused.value.message
    # …but it runs out by itself, one lease after the last heartbeat.
    expires = float(item(project)["expires_at"]["N"])  # type: ignore[index]
    assert expires <= killed_at + 2.1
    time.sleep(max(0.0, expires - time.time()) + 0.1)
    with lock.hold(table(project), "chat-api", "staging", lease=2) as me:
        assert item(project)["token"]["S"] == me.token  # type: ignore[index]
    assert item(project) is None


def test_sigterm_releases_the_lock_at_once(project: Project, ecs_sim: Any) -> None:
    slow(ecs_sim, 8.0)
    proc = start(project, project.world.push("v1"))
    wait_for_lock(project, proc)
    wait_until(lambda: calls_after(ecs_sim, "DescribeServices", "CreateService") >= 2,
               "the deploy to watch its rollout")
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=30)[0]

    assert proc.returncode == 130, out
    assert item(project) is None, out  # gone right after exit, not one lease later
    assert "deploy lock of chat-api/staging released" in out


def test_unlock_breaks_a_stale_lock_with_a_warning(project: Project) -> None:
    t = table(project)
    t.ensure()
    now = time.time()
    stale = lock.Holder(key=KEY, token="dead", who="alice@laptop", host="laptop", pid=4242,
                        command="deployctl run --env staging", started_at=now - 30, expires_at=now + 600,
                        release="20260101T000000Z-abc-0000")
    assert t.try_put(stale)

    refused = project.cli("unlock", "-f", project.file, "--env", "staging")
    assert refused.code == 2 and "--yes" in refused.err
    assert item(project) is not None

    res = project.cli("unlock", "-f", project.file, "--env", "staging", "--yes")
    assert res.code == 0, res.text
    assert "warning: chat-api/staging is locked by alice@laptop (pid 4242 on laptop) running " \
           "`deployctl run --env staging`" in res.err
    assert "release 20260101T000000Z-abc-0000" in res.err and "broken" in res.out
    assert item(project) is None
    again = project.cli("unlock", "-f", project.file, "--env", "staging", "--yes")
    assert again.code == 0 and "is not locked" in again.out


def test_a_waiting_deploy_stops_waiting_when_cancelled(project: Project) -> None:
    t = table(project)
    with lock.hold(t, "chat-api", "staging", lease=30):
        cancelled = threading.Event()
        threading.Timer(0.3, cancelled.set).start()
        started = time.monotonic()
        with pytest.raises(Cancelled), lock.hold(t, "chat-api", "staging", wait=30, cancelled=cancelled):
            pass
        assert time.monotonic() - started < 5
    assert item(project) is None


def test_a_broken_lock_is_noticed_by_its_holder(project: Project) -> None:
    t = table(project)
    lines: list[str] = []
    with lock.hold(t, "chat-api", "staging", lease=1, log=lines.append) as me:
        holder = t.read(KEY)
        assert holder is not None and holder.token == me.token
        lock.break_lock(t, holder)
        wait_until(lambda: any("was broken" in line for line in lines), "the next heartbeat")
    assert any("was broken by someone else" in line for line in lines), lines
