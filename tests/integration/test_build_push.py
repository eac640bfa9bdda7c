"""lint → test → build → push against the real Docker engine and the real local registries.

Every CLI test runs `python -m deployctl run` as a subprocess in a throwaway git repository
(see conftest.fixture_app), the way a person or CI runs it, and checks the result in the
registry over its HTTP API, not just in deployctl's own report.
"""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import AUTH_PASSWORD, AUTH_USER, FixtureApp, Registry
from tests.support.ports import free_port

pytestmark = pytest.mark.docker


def assert_clean_failure(result: Any, *needles: str) -> None:
    """Exit 1, a message for people, no traceback."""
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    assert "internal error" not in result.output
    for needle in needles:
        assert needle in result.output, f"{needle!r} not in:\n{result.output}"


# --- the happy path and the skip path -------------------------------------------------------


def test_pipeline_pushes_and_records_the_registry_digest(fixture_app: FixtureApp, registry: Registry,
                                                         tmp_path: Path) -> None:
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    result = fixture_app.run("--skip", "deploy", "--json", "--report", str(tmp_path / "report.json"),
                             env={"FIXTURE_RENDEZVOUS": str(rendezvous)})
    assert result.code == 0, result.output
    report = result.report()
    assert [(s["name"], s["status"]) for s in report["stages"]] == [
        ("lint", "succeeded"), ("test", "succeeded"), ("build", "succeeded"), ("push", "succeeded")]
    assert json.loads((tmp_path / "report.json").read_text()) == report

    # The digest deployctl recorded is the one the registry serves for the tag.
    tag = fixture_app.sha12
    digest = registry.manifest_digest(fixture_app.repository, tag)
    assert digest is not None and digest.startswith("sha256:")
    assert report["outputs"] == {
        "image": f"{registry.host}/{fixture_app.repository}:{tag}",
        "digest": digest,
        "image_ref": f"{registry.host}/{fixture_app.repository}@{digest}",
    }

    # The image is the `runtime` target, labelled, with the build arg applied.
    config = registry.image_config(fixture_app.repository, tag)
    labels = config["config"]["Labels"]
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=fixture_app.path, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert labels["org.opencontainers.image.revision"] == sha
    assert labels["deployctl.git-sha"] == sha
    assert labels["deployctl.app"] == "fixture"
    assert labels["deployctl.branch"] == "main"
    assert labels["deployctl.inputs"].startswith("sha256:")
    assert config["config"]["Cmd"] == ["/bin/httpd", "-f", "-p", "8000", "-h", "/www"]
    assert config["config"]["User"] == "65534"

    # lint and test overlapped in time (they also had to meet in the rendezvous to pass at all).
    lint, test = result.stage("lint"), result.stage("test")
    assert lint["started_at"] < test["ended_at"] and test["started_at"] < lint["ended_at"]
    assert any("rendezvous: lint met test" in line for line in lint["tail"])
    # push waited for all three.
    push = result.stage("push")
    assert push["started_at"] >= max(result.stage(n)["ended_at"] for n in ("lint", "test", "build"))


def test_second_run_on_the_same_commit_skips_build_and_push(fixture_app: FixtureApp, registry: Registry,
                                                            docker_engine: Any) -> None:
    first = fixture_app.run("--skip", "deploy", "--json")
    assert first.code == 0, first.output
    digest = first.report()["outputs"]["digest"]
    created = registry.image_config(fixture_app.repository, fixture_app.sha12)["created"]
    # Remove the local image: a rebuild would bring it back, a push would need it.
    docker_engine.images.remove(fixture_app.image, force=True, noprune=True)

    # With DOCKER_HOST pointing nowhere, neither a build nor a push is even possible.
    second = fixture_app.run("--skip", "deploy", "--json", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert second.code == 0, second.output
    build, push = second.stage("build"), second.stage("push")
    assert build["status"] == "skipped" and "already in registry" in build["message"]
    assert push["status"] == "skipped" and "already in registry" in push["message"]
    assert second.report()["outputs"]["digest"] == digest
    assert registry.manifest_digest(fixture_app.repository, fixture_app.sha12) == digest
    assert registry.image_config(fixture_app.repository, fixture_app.sha12)["created"] == created
    assert docker_engine.images.list(name=fixture_app.image) == []


def test_other_build_inputs_on_the_same_commit_rebuild(fixture_app: FixtureApp, registry: Registry) -> None:
    """Same commit and tag, another build arg (environment `alt`): not the same image, so no skip."""
    first = fixture_app.run("--only", "build,push", "--json")
    assert first.code == 0, first.output
    cmd = fixture_app.command("--only", "build,push", "--json")
    cmd[cmd.index("dev")] = "alt"
    proc = subprocess.run(cmd, cwd=fixture_app.path, env=fixture_app.base_env(), capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    second = json.loads(proc.stdout)
    build = next(s for s in second["stages"] if s["name"] == "build")
    assert build["status"] == "succeeded"
    assert "built from different inputs; rebuilding" in proc.stderr
    assert second["outputs"]["image"] == first.report()["outputs"]["image"]
    assert second["outputs"]["digest"] != first.report()["outputs"]["digest"]
    assert registry.manifest_digest(fixture_app.repository, fixture_app.sha12) == second["outputs"]["digest"]


# --- failures -------------------------------------------------------------------------------


def test_failing_test_stage_stops_the_run_before_push(fixture_app: FixtureApp, registry: Registry) -> None:
    result = fixture_app.run("--skip", "deploy", "--json", env={"FIXTURE_TEST_FAIL": "1"})
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    report = result.report()
    assert report["status"] == "failed"
    assert result.stage("test")["status"] == "failed"
    assert "exited 3" in result.stage("test")["message"]
    assert "test_version FAILED" in "\n".join(result.stage("test")["tail"])
    assert result.stage("push")["status"] == "not_run"
    assert "digest" not in report["outputs"]
    assert registry.manifest_digest(fixture_app.repository, fixture_app.sha12) is None
    assert registry.tags(fixture_app.repository) == []


def test_failing_test_stage_stops_deploy_when_push_is_skipped(fixture_app: FixtureApp,
                                                              registry: Registry) -> None:
    """`--skip push` must not let deploy go ahead of lint and test: deploy never runs at all."""
    result = fixture_app.run("--skip", "push", "--json",
                             env={"FIXTURE_TEST_SLEEP": "2", "FIXTURE_TEST_FAIL": "1"})
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stage("test")["status"] == "failed", result.output
    deploy = result.stage("deploy")
    assert deploy["status"] == "not_run", deploy
    assert deploy["started_at"] is None
    assert "release" not in result.report()["outputs"]


@pytest.mark.parametrize("selection", [("--skip", "push"), ("--only", "test,build,deploy")])
def test_deploy_starts_after_lint_test_and_build_when_push_is_left_out(fixture_app: FixtureApp,
                                                                       registry: Registry,
                                                                       selection: tuple[str, str]) -> None:
    # The image is never pushed, so deploy, once it starts, fails at once ("not in the registry")
    # without touching the engine: what matters is *when* it started, from the report.
    result = fixture_app.run(*selection, "--json", env={"FIXTURE_TEST_SLEEP": "2"})
    assert result.code == 1, result.output
    before = [s for s in result.report()["stages"] if s["name"] != "deploy"]
    assert {s["name"] for s in before} >= {"test", "build"}
    assert all(s["status"] == "succeeded" for s in before), before
    deploy = result.stage("deploy")
    assert deploy["status"] == "failed", deploy
    assert deploy["started_at"] >= max(s["ended_at"] for s in before)


def test_local_service_secrets_are_masked_in_lint_and_test_output(fixture_app: FixtureApp,
                                                                  tmp_path: Path) -> None:
    """The local target reads service secrets from the environment lint and test inherit: a
    command printing one must show it masked, on the console and in the report's tail, although
    deploy (which used to register them) never runs."""
    value = "mdl-7Qx93kZpW2"
    fixture_app.edit("deploy.yaml", lambda t: t.replace(
        '["sh checks/lint.sh"]', '["sh checks/lint.sh", "echo lint sees $MODEL_API_KEY"]').replace(
        "    local_port: 18080", "    local_port: 18080\n    secrets: {MODEL_API_KEY: fixture/model-api-key}"))
    fixture_app.commit("a service secret")
    report_file = tmp_path / "report.json"
    result = fixture_app.run("--only", "lint,test", "--report", str(report_file),
                             env={"MODEL_API_KEY": value})
    assert result.code == 0, result.output
    assert value not in result.output
    report = report_file.read_text()
    assert value not in report
    lint = next(s for s in json.loads(report)["stages"] if s["name"] == "lint")
    assert "lint sees ***" in lint["tail"], lint["tail"]


def test_wrong_registry_password_is_a_clear_error(fixture_app: FixtureApp, auth_registry: Registry) -> None:
    fixture_app.set_registry(auth_registry.host)
    fixture_app.commit("push to the auth registry")
    wrong = f"not-the-password-{uuid.uuid4().hex[:6]}"
    result = fixture_app.run("--only", "build,push", env={"DEPLOYCTL_REGISTRY_USERNAME": AUTH_USER,
                                                          "DEPLOYCTL_REGISTRY_PASSWORD": wrong})
    assert_clean_failure(result, "refused", auth_registry.host, "DEPLOYCTL_REGISTRY_PASSWORD")
    assert wrong not in result.output
    assert auth_registry.manifest_digest(fixture_app.repository, fixture_app.sha12) is None


def test_registry_credentials_from_the_environment_push(fixture_app: FixtureApp,
                                                        auth_registry: Registry) -> None:
    fixture_app.set_registry(auth_registry.host)
    fixture_app.commit("push to the auth registry")
    creds = {"DEPLOYCTL_REGISTRY_USERNAME": AUTH_USER, "DEPLOYCTL_REGISTRY_PASSWORD": AUTH_PASSWORD}
    result = fixture_app.run("--only", "build,push", "--json", env=creds)
    assert result.code == 0, result.output
    digest = auth_registry.manifest_digest(fixture_app.repository, fixture_app.sha12)
    assert result.report()["outputs"]["digest"] == digest
    # The skip check also authenticates (Basic challenge) with the same credentials.
    again = fixture_app.run("--only", "build,push", "--json", env=creds)
    assert again.code == 0 and again.stage("push")["status"] == "skipped", again.output


def test_docker_login_credentials_serve_push_and_the_lean_skip_path(fixture_app: FixtureApp,
                                                                    auth_registry: Registry) -> None:
    """`docker login` is how most people authenticate; the skip check reads that login itself,
    without importing the docker SDK or GitPython (their imports were most of its time)."""
    fixture_app.set_registry(auth_registry.host)
    fixture_app.commit("push to the auth registry")
    token = base64.b64encode(f"{AUTH_USER}:{AUTH_PASSWORD}".encode()).decode()
    (fixture_app.home / ".docker" / "config.json").write_text(
        json.dumps({"auths": {f"http://{auth_registry.host}": {"auth": token}}}))
    first = fixture_app.run("--only", "build,push", "--json")
    assert first.code == 0, first.output
    assert first.report()["outputs"]["digest"] == auth_registry.manifest_digest(fixture_app.repository,
                                                                                fixture_app.sha12)

    argv = fixture_app.command("--only", "build,push", "--json")
    argv[1:1] = ["-X", "importtime"]  # the interpreter lists every module it imports on stderr
    proc = subprocess.run(argv, cwd=fixture_app.path, env={**fixture_app.base_env(),
                                                           "DOCKER_HOST": "unix:///nonexistent.sock"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stages = {s["name"]: s["status"] for s in json.loads(proc.stdout)["stages"]}
    assert stages == {"build": "skipped", "push": "skipped"}
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0]
                for line in proc.stderr.splitlines() if line.startswith("import time:") and "|" in line}
    assert "pydantic" in imported  # the probe sees the config's own imports...
    assert not imported & {"docker", "git", "boto3", "requests"}  # ...and none of these
    assert AUTH_PASSWORD not in proc.stdout + proc.stderr


def test_registry_that_is_down_is_a_clear_error(fixture_app: FixtureApp) -> None:
    port = free_port()  # a port nothing listens on
    fixture_app.set_registry(f"127.0.0.1:{port}")
    fixture_app.commit("registry down")
    result = fixture_app.run("--only", "build,push")
    assert_clean_failure(result, f"cannot reach the registry 127.0.0.1:{port}", "connection refused")


def test_missing_dockerfile_is_a_clear_error(fixture_app: FixtureApp) -> None:
    (fixture_app.path / "Dockerfile").unlink()
    fixture_app.commit("no Dockerfile")
    result = fixture_app.run("--only", "build")
    assert_clean_failure(result, "no Dockerfile at", "image.dockerfile")


def test_dockerfile_syntax_error_is_a_clear_error(fixture_app: FixtureApp) -> None:
    fixture_app.edit("Dockerfile", lambda t: t.replace("FROM base AS build",
                                                      "FROM base AS build\nFROBNICATE /x"))
    fixture_app.commit("typo")
    result = fixture_app.run("--only", "build")
    assert_clean_failure(result, "unknown instruction", "FROBNICATE")


def test_failing_dockerfile_step_is_named(fixture_app: FixtureApp) -> None:
    fixture_app.edit("Dockerfile", lambda t: t.replace("COPY VERSION /out/www/version",
                                                      "RUN test -e /no/such/file\n"
                                                      "COPY VERSION /out/www/version"))
    fixture_app.commit("failing step")
    result = fixture_app.run("--only", "build")
    assert_clean_failure(result, "docker build failed at Step", "RUN test -e /no/such/file")


def test_docker_daemon_down_is_a_clear_error(fixture_app: FixtureApp) -> None:
    result = fixture_app.run("--only", "build,push", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert_clean_failure(result, "Cannot reach the Docker daemon at unix:///nonexistent.sock", "dockerd")


def test_image_over_max_size_fails_the_build(fixture_app: FixtureApp) -> None:
    fixture_app.edit("deploy.yaml", lambda t: t.replace("max_size: 20MB", "max_size: 1MB"))
    fixture_app.commit("tight budget")
    result = fixture_app.run("--only", "build,push")
    assert_clean_failure(result, "over image.max_size 1.0 MB")
    assert "push" in result.output and "not run" in result.output


def test_env_file_in_context_is_refused(fixture_app: FixtureApp, docker_engine: Any) -> None:
    secret = f"sk-test-{uuid.uuid4().hex}"
    (fixture_app.path / ".env").write_text(f"OPENAI_API_KEY={secret}\n")
    (fixture_app.path / "certs").mkdir()
    (fixture_app.path / "certs" / "server.key").write_text("not really a key\n")
    fixture_app.commit("oops, secrets")
    result = fixture_app.run("--only", "build")
    # Exit 2, not 1: the fix is in the project (.dockerignore), as for a config error.
    assert result.code == 2, result.output
    assert "Traceback" not in result.output
    for needle in ("refusing to build", ".env", "certs/server.key", ".dockerignore"):
        assert needle in result.output
    assert secret not in result.output
    assert docker_engine.images.list(name=fixture_app.image) == []

    # The fix the message names works.
    fixture_app.edit(".dockerignore", lambda t: t + ".env*\n**/*.key\n")
    fixture_app.commit("ignore secrets")
    fixed = fixture_app.run("--only", "build")
    assert fixed.code == 0, fixed.output


# --- signals and CI -------------------------------------------------------------------------


def _processes_with(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_sigterm_during_test_stage_exits_130_and_leaves_no_child(fixture_app: FixtureApp,
                                                                tmp_path: Path) -> None:
    marker = f"FIXTURE_MARKER={uuid.uuid4().hex}"
    pidfile = tmp_path / "test.pid"
    env = {**fixture_app.base_env(), "FIXTURE_TEST_SLEEP": "60", "FIXTURE_PIDFILE": str(pidfile),
           marker.split("=")[0]: marker.split("=")[1]}
    proc = subprocess.Popen(fixture_app.command("--skip", "deploy"), cwd=fixture_app.path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the test stage never started"
            time.sleep(0.05)
        test_pid = int(pidfile.read_text())
        assert test_pid in _processes_with(marker)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, output
    assert "interrupted" in output and "Traceback" not in output
    assert _processes_with(marker) == [], "a stage process survived the run"


def test_github_actions_summary_and_outputs(fixture_app: FixtureApp, registry: Registry,
                                            tmp_path: Path) -> None:
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs.txt"
    summary.write_text("earlier step\n")
    result = fixture_app.run("--skip", "deploy", env={
        "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(outputs)})
    assert result.code == 0, result.output
    digest = registry.manifest_digest(fixture_app.repository, fixture_app.sha12)
    lines = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert lines == {
        "image": f"{registry.host}/{fixture_app.repository}:{fixture_app.sha12}",
        "digest": digest,
        "image_ref": f"{registry.host}/{fixture_app.repository}@{digest}",
    }
    text = summary.read_text()
    assert text.startswith("earlier step\n")
    for stage in ("lint", "test", "build", "push"):
        assert f"| {stage} |" in text
    assert "succeeded" in text and digest in text
    assert "::group::" in result.stdout


# --- command-line rules ---------------------------------------------------------------------


def test_run_on_a_promoted_environment_is_refused(fixture_app: FixtureApp) -> None:
    proc = subprocess.run(fixture_app.command()[:-2] + ["--env", "prod"], cwd=fixture_app.path,
                          env=fixture_app.base_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "deployctl promote dev prod" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_image_option_needs_an_image_that_exists(fixture_app: FixtureApp, registry: Registry) -> None:
    missing = f"{registry.host}/{fixture_app.repository}:does-not-exist"
    result = fixture_app.run("--image", missing)
    assert_clean_failure(result, f"the image {missing} is not in the registry")


def test_dry_run_changes_nothing(fixture_app: FixtureApp, registry: Registry) -> None:
    result = fixture_app.run("--dry-run", "--json", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert result.code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["run"]["stages"] == ["lint", "test", "build", "push", "deploy"]
    assert plan["image"]["ref"] == f"{registry.host}/{fixture_app.repository}:{fixture_app.sha12}"
    assert registry.tags(fixture_app.repository) == []


# --- ECR, against moto server ---------------------------------------------------------------


def test_ecr_repository_is_created_with_scan_on_push_and_immutable_tags(aws: Any) -> None:
    """Unit-level: the ECR helpers of the push stage against moto server over HTTP.

    A real `docker push` to moto's ECR is impossible (moto serves the ECR API, not a registry),
    so the push itself is covered by the local-registry tests above; here we check what
    deployctl asks ECR: the login token, creating the repository, and resolving a tag.
    """
    from deployctl.adapters.registry import ImageRef
    from deployctl.stages.access import RegistryAccess, ecr_login, ensure_ecr_repository, resolve_digest

    ecr = aws.client("ecr")
    assert ensure_ecr_repository(ecr, "itest/ecr-app", app="fixture") is True
    repo = ecr.describe_repositories(repositoryNames=["itest/ecr-app"])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert ensure_ecr_repository(ecr, "itest/ecr-app", app="fixture") is False

    host, user, password = ecr_login(ecr)
    assert host == "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    assert user == "AWS" and password
    seen: list[str] = []
    access = RegistryAccess(host, ecr=ecr, on_secret=seen.append)
    assert access.explicit() == (user, password) and seen == [password]

    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                   "digest": "sha256:" + "a" * 64},
        "layers": [],
    })
    put = ecr.put_image(repositoryName="itest/ecr-app", imageManifest=manifest, imageTag="abc123def456")
    digest = put["image"]["imageId"]["imageDigest"]
    assert resolve_digest(ImageRef.parse(f"{host}/itest/ecr-app:abc123def456"), access, ecr) == digest
    with pytest.raises(Exception, match="is not in the registry"):
        resolve_digest(ImageRef.parse(f"{host}/itest/ecr-app:nope"), access, ecr)


def _build_containers(docker_engine: Any, marker: str) -> list[dict[str, Any]]:
    """Containers (running or not) the classic builder made for a RUN step naming `marker`.
    One list call: the builder removes containers between a list and an inspect."""
    return [c for c in docker_engine.api.containers(all=True) if marker in (c.get("Command") or "")]


@pytest.mark.parametrize("how", ["sigterm", "fail-fast"])
def test_cancel_during_a_silent_build_step_stops_the_build_promptly(fixture_app: FixtureApp,
                                                                    docker_engine: Any, how: str) -> None:
    """A RUN step prints nothing for minutes: cancelling must not wait for its next line.
    The daemon connection is cut, the daemon stops the step and removes its container."""
    marker = f"silent-{uuid.uuid4().hex[:8]}"
    fixture_app.edit("Dockerfile", lambda t: t.replace(
        "COPY VERSION /out/www/version", f"RUN echo {marker} && sleep 120\nCOPY VERSION /out/www/version"))
    if how == "fail-fast":
        # The test stage fails once the build is inside the silent step.
        fixture_app.edit("deploy.yaml", lambda t: t.replace(
            'test: {run: ["sh checks/test.sh"], timeout: 60s}',
            'test: {run: ["until [ -e $FIXTURE_GO ]; do sleep 0.1; done; exit 7"], timeout: 150s}'))
    fixture_app.commit("a long silent build step")
    go = fixture_app.home / "go"
    args = ("--only", "build") if how == "sigterm" else ("--only", "test,build")
    proc = subprocess.Popen(fixture_app.command(*args), cwd=fixture_app.path,
                            env={**fixture_app.base_env(), "FIXTURE_GO": str(go)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(c["State"] == "running" for c in _build_containers(docker_engine, marker)):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the silent build step never started"
            time.sleep(0.1)
        time.sleep(1.0)  # well inside the step: its echo is out, the sleep is silent
        if how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:
            go.touch()
        # Generous: a cancel that waited for the step (or for the abandon timeout) is far slower.
        output, _ = proc.communicate(timeout=8)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in output and "abandoned" not in output, output
    last = output.strip().splitlines()[-1]
    if how == "sigterm":
        assert proc.returncode == 130, output
        assert last == "interrupted: nothing done; build cancelled", output
    else:
        assert proc.returncode == 1, output
        assert last.startswith("run failed in") and "test:" in last and "exited 7" in last, output
        assert "build   cancelled" in output or "build  cancelled" in output, output
    deadline = time.monotonic() + 60
    while _build_containers(docker_engine, marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _build_containers(docker_engine, marker) == [], "the build step's container was left behind"
    assert docker_engine.images.list(name=fixture_app.image) == []


class _StuckRegistry:
    """A registry that answers the API check and every lookup (nothing is there) at once, and
    never answers an upload: what a registry wedged behind a proxy looks like mid-push.
    `lookups_hang` makes the lookups hang too (a registry that accepts connections, then
    nothing)."""

    def __init__(self, lookups_hang: bool) -> None:
        import http.server
        import socketserver

        release = self.release = __import__("threading").Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, code: int) -> None:
                if lookups_hang and self.path != "/v2/":
                    release.wait(60)
                    return
                body = b"{}" if code == 200 else b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:
                self._answer(200 if self.path == "/v2/" else 404)

            def do_HEAD(self) -> None:
                self._answer(404)

            def do_POST(self) -> None:
                release.wait(60)

            do_PUT = do_PATCH = do_POST

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = __import__("threading").Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("stuck", ["registry check", "push upload"])
def test_cancel_while_the_registry_does_not_answer_is_prompt(fixture_app: FixtureApp, docker_engine: Any,
                                                             stuck: str) -> None:
    registry = _StuckRegistry(lookups_hang=stuck == "registry check")
    try:
        fixture_app.set_registry(registry.host)
        fixture_app.commit("a registry that hangs")
        if stuck == "push upload":
            built = fixture_app.run("--only", "build")  # no registry involved without push
            assert built.code == 0, built.output
        wait_for = "[build] build inputs" if stuck == "registry check" else "[push] "
        stage = "build" if stuck == "registry check" else "push"
        # build asks the registry only when push is part of the run.
        only = "build,push" if stage == "build" else "push"
        proc = subprocess.Popen(fixture_app.command("--only", only), cwd=fixture_app.path,
                                env=fixture_app.base_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            assert proc.stdout is not None
            seen = []
            for line in proc.stdout:
                seen.append(line)
                if line.startswith(wait_for):
                    break
            else:
                raise AssertionError("".join(seen))
            time.sleep(1.5)  # now waiting on the registry
            assert proc.poll() is None, "".join(seen)
            proc.send_signal(signal.SIGTERM)
            # Generous; the registry client's own timeout alone is 15 s.
            rest, _ = proc.communicate(timeout=8)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        output = "".join(seen) + rest
        assert proc.returncode == 130, output
        assert "Traceback" not in output and "abandoned" not in output, output
        last = output.strip().splitlines()[-1]
        assert last == ("interrupted: nothing done; build cancelled; push not run" if stage == "build"
                        else "interrupted: nothing done; push cancelled"), output
    finally:
        registry.close()
        with contextlib.suppress(Exception):
            docker_engine.images.remove(fixture_app.image, force=True, noprune=True)


def test_missing_credential_helper_is_a_clear_error_for_build_and_push(fixture_app: FixtureApp) -> None:
    """A docker config naming a helper that is not installed (a config copied from a laptop
    with Docker Desktop, say): the same words as docker_config's own check, exit 1."""
    config = fixture_app.home / ".docker" / "config.json"
    wording = ("the docker config names the credential helper 'review-nonexistent', but "
               "docker-credential-review-nonexistent is not on PATH")
    config.write_text(json.dumps({"credsStore": "review-nonexistent"}))
    build = fixture_app.run("--only", "build,push")
    assert_clean_failure(build, wording, "credsStore")
    assert "StoreError" not in build.output

    # Only this registry's helper is missing: the build goes through, the push names it.
    config.write_text("{}")
    assert fixture_app.run("--only", "build").code == 0
    config.write_text(json.dumps({"credHelpers": {fixture_app.registry.host: "review-nonexistent"}}))
    push = fixture_app.run("--only", "push")
    assert_clean_failure(push, wording)
    assert "Credentials store error" not in push.output


class _BreakingDaemon:
    """Just enough of the Engine API to start a build or a push, whose stream then breaks off
    mid-chunk: a daemon that crashed or restarted under a running build."""

    def __init__(self) -> None:
        import http.server
        import socketserver
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Api-Version", "1.41")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path.endswith("/_ping"):
                    self._send(200, b"OK")
                elif path.endswith("/version"):
                    self._send(200, json.dumps({"ApiVersion": "1.41", "Version": "20.10"}).encode())
                else:
                    self._send(404, b'{"message": "No such image"}')

            def do_POST(self) -> None:
                if self.headers.get("Transfer-Encoding") == "chunked":
                    while (size := int(self.rfile.readline().strip(), 16)):
                        self.rfile.read(size + 2)
                    self.rfile.readline()
                else:
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                first = {"stream": "Step 1/2 : FROM scratch\n"} if "/build" in self.path else {"status": "Preparing"}
                line = json.dumps(first).encode() + b"\r\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.write(b"ff\r\npartial")  # a chunk promised and never finished
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.host = f"tcp://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def breaking_daemon() -> Any:
    daemon = _BreakingDaemon()
    yield daemon
    daemon.close()


def test_daemon_connection_breaking_mid_build_is_a_clear_error(fixture_app: FixtureApp,
                                                               breaking_daemon: _BreakingDaemon) -> None:
    result = fixture_app.run("--only", "build", env={"DOCKER_HOST": breaking_daemon.host})
    assert_clean_failure(result, "the Docker daemon connection broke during the build")
    assert "ProtocolError" not in result.output and "IncompleteRead" not in result.output


def test_daemon_connection_breaking_mid_push_is_a_clear_error(breaking_daemon: _BreakingDaemon,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from deployctl.adapters import engine
    from deployctl.errors import ExternalError

    monkeypatch.setenv("DOCKER_HOST", breaking_daemon.host)
    client = engine.connect(timeout=10)
    with pytest.raises(ExternalError) as err:
        engine.push(client, "127.0.0.1:5000/itest/broken", "t1")
    assert err.value.exit_code == 1
    assert "the Docker daemon connection broke during the push" in err.value.message
