"""`deployctl init` in real temporary git repositories, through the real CLI."""

from __future__ import annotations

import fnmatch
import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import cli as in_process

ROOT = Path(__file__).resolve().parents[2]
WRITTEN = [
    "deploy.yaml", "Dockerfile", ".dockerignore", ".github/workflows/deploy-staging.yml",
    ".github/workflows/preview.yml", ".github/workflows/promote.yml", ".github/workflows/rollback.yml",
]


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join([str(ROOT), out.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    for key in ("GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_REF_NAME", "GITHUB_HEAD_REF"):
        out.pop(key, None)
    return out


def deployctl(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return in_process.run(*args, cwd=cwd, env=env(), replace_env=True)


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=cwd, check=True,
                   capture_output=True)


APP_PY = """from fastapi import FastAPI

app = FastAPI()


@app.get("/health/ready")
def ready() -> dict:
    return {"ready": True}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A small FastAPI project with ruff and pytest, in a fresh git repository."""
    d = tmp_path / "my-ai-app"
    (d / "tests").mkdir(parents=True)
    (d / "main.py").write_text(APP_PY)
    (d / "requirements.txt").write_text("fastapi==0.115.6\nuvicorn==0.32.1\n")
    (d / "requirements-dev.txt").write_text("-r requirements.txt\nruff\npytest\nhttpx\n")
    (d / "tests" / "test_main.py").write_text("def test_nothing():\n    assert True\n")
    git(d, "init", "-q", "-b", "main")
    return d


def test_init_then_validate_and_plan(repo: Path) -> None:
    r = deployctl(repo, "init", "--yes")
    assert r.returncode == 0, r.stderr
    for rel in WRITTEN:
        assert (repo / rel).is_file(), rel
        assert f"wrote {rel}" in r.stdout
    data = yaml.safe_load((repo / "deploy.yaml").read_text())
    assert data["app"] == "my-ai-app"  # the directory's name
    assert data["environments"]["preview"]["preview"] is True

    v = deployctl(repo, "validate")
    assert v.returncode == 0, v.stderr
    assert "4 environments: dev, staging, preview, prod" in v.stdout
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "deployctl init")
    p = deployctl(repo, "plan", "--env", "staging", "--json")
    assert p.returncode == 0, p.stderr
    import json

    plan = json.loads(p.stdout)
    assert plan["services"]["api"]["ecs_service"] == "my-ai-app-staging-api"
    assert plan["image"]["tag"] == plan["git"]["sha"][:12]
    assert [s["name"] for s in plan["stages"]] == ["lint", "test", "build", "push", "deploy"]


def test_flags_answer_the_questions(repo: Path) -> None:
    r = deployctl(repo, "init", "--app", "chat", "--region", "eu-west-1", "--port", "9000",
                  "--health-path", "/ready", "--registry", "localhost:5000")
    assert r.returncode == 0, r.stderr
    data = yaml.safe_load((repo / "deploy.yaml").read_text())
    assert (data["app"], data["region"], data["image"]["registry"]) == ("chat", "eu-west-1", "localhost:5000")
    assert data["services"]["api"]["port"] == 9000
    assert data["services"]["api"]["health"]["path"] == "/ready"
    dockerfile = (repo / "Dockerfile").read_text()
    assert "EXPOSE 9000" in dockerfile and "http://127.0.0.1:9000/ready" in dockerfile
    assert "aws-region: eu-west-1" in (repo / ".github/workflows/deploy-staging.yml").read_text()
    assert deployctl(repo, "validate").returncode == 0


def test_questions_on_a_terminal(repo: Path) -> None:
    main, sub = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "deployctl", "init"], cwd=repo, env=env(), stdin=sub,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(sub)
    # app, region, port, health path, start command, local port, registry, lint?, test?
    os.write(main, b"talk\nap-south-1\n8080\n/healthz\n\n\n\n\n\n")
    out, err = proc.communicate(timeout=60)
    os.close(main)
    assert proc.returncode == 0, err
    data = yaml.safe_load((repo / "deploy.yaml").read_text())
    assert (data["app"], data["region"]) == ("talk", "ap-south-1")
    assert data["services"]["api"]["port"] == 8080
    assert data["services"]["api"]["health"]["path"] == "/healthz"


def test_bad_answers_are_usage_errors(repo: Path) -> None:
    r = deployctl(repo, "init", "--app", "Bad_Name", "--port", "70000", "--yes")
    assert r.returncode == 2
    assert "app name 'Bad_Name'" in r.stderr and "port 70000" in r.stderr
    assert not (repo / "deploy.yaml").exists()


def test_refuses_outside_a_git_repository(tmp_path: Path) -> None:
    r = deployctl(tmp_path, "init", "--yes")
    assert r.returncode == 2
    assert "not inside a git repository" in r.stderr
    assert not (tmp_path / "deploy.yaml").exists()


def test_never_overwrites_without_force(repo: Path) -> None:
    # An existing Dockerfile is adopted (kept, and deploy.yaml builds it), not an obstacle;
    # any other file init would write is refused as before.
    (repo / "Dockerfile").write_text("FROM scratch\n")
    (repo / ".github/workflows").mkdir(parents=True)
    (repo / ".github/workflows/preview.yml").write_text("mine\n")
    r = deployctl(repo, "init", "--yes")
    assert r.returncode == 2
    assert "not overwriting existing files: .github/workflows/preview.yml\n" in r.stderr
    assert (repo / "Dockerfile").read_text() == "FROM scratch\n"
    assert not (repo / "deploy.yaml").exists(), "nothing is written when anything exists"

    r = deployctl(repo, "init", "--yes", "--force")
    assert r.returncode == 0, r.stderr
    assert "overwrote Dockerfile" in r.stdout and "wrote deploy.yaml" in r.stdout
    assert (repo / "Dockerfile").read_text().count("FROM ") >= 2


# --- the Dockerfile, parsed ------------------------------------------------------------------


def stages(dockerfile: str) -> list[dict[str, object]]:
    """Stages of a Dockerfile: name, base image and instructions (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", dockerfile)
    out: list[dict[str, object]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", rest.strip(), re.IGNORECASE)
            assert m, line
            out.append({"base": m.group(1), "name": m.group(2), "ops": []})
        elif out:
            out[-1]["ops"].append((op, rest.strip()))  # type: ignore[union-attr]
    return out


def test_dockerfile_is_multi_stage_with_a_non_root_runtime(repo: Path) -> None:
    assert deployctl(repo, "init", "--yes").returncode == 0
    parsed = stages((repo / "Dockerfile").read_text())
    assert len(parsed) >= 2
    # builder, runtime (deploy.yaml's target), then the test stage built on the runtime
    target = yaml.safe_load((repo / "deploy.yaml").read_text())["image"]["target"]
    builder, runtime = parsed[0], next(st for st in parsed if st["name"] == target)
    assert parsed[-1]["name"] == "test" and parsed[-1]["base"] == "runtime"
    users = [arg for op, arg in runtime["ops"] if op == "USER"]  # type: ignore[union-attr]
    assert users, "the final stage sets a USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    builder_runs = " ".join(arg for op, arg in builder["ops"] if op == "RUN")  # type: ignore[union-attr]
    runtime_runs = " ".join(arg for op, arg in runtime["ops"] if op == "RUN")  # type: ignore[union-attr]
    assert "build-essential" in builder_runs and "venv" in builder_runs
    for tool in ("build-essential", "gcc", "g++", "make", "pip install"):
        assert tool not in runtime_runs, f"{tool} in the runtime stage"
    copies = [arg for op, arg in runtime["ops"] if op == "COPY"]  # type: ignore[union-attr]
    assert any(c.startswith(f"--from={builder['name']} /opt/venv") for c in copies)


# --- the .dockerignore, applied ---------------------------------------------------------------


def ignored(patterns: list[str], path: str) -> bool:
    """Docker's rule, simplified: a pattern excludes a path or any of its parent directories;
    `**/` matches any number of directories; later `!` patterns re-include."""
    result = False
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pat in patterns:
        negate = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        forms = [pat] + ([pat[3:], "*/" + pat[3:], "*/*/" + pat[3:]] if pat.startswith("**/") else [])
        if any(fnmatch.fnmatchcase(c, f) for c in candidates for f in forms):
            result = not negate
    return result


def test_dockerignore_keeps_secrets_out(repo: Path) -> None:
    assert deployctl(repo, "init", "--yes").returncode == 0
    patterns = [ln.strip() for ln in (repo / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    for secret in (".env", ".env.local", ".env.production", "config/.env", "svc/a/.env.dev", "tls/server.key",
                   "cert.pem", ".aws/credentials", ".git/HEAD", "app/__pycache__/x.pyc", ".ssh/id_rsa"):
        assert ignored(patterns, secret), secret
    for kept in ("app/main.py", "requirements.txt", "environment.py", "Dockerfile"):
        assert not ignored(patterns, kept), kept


def test_init_offers_the_frontend_section_when_it_finds_a_frontend(repo: Path) -> None:
    (repo / "web").mkdir()
    (repo / "web" / "package.json").write_text('{"name": "web"}\n')
    (repo / "web" / "next.config.mjs").write_text("export default {}\n")
    r = deployctl(repo, "init", "--yes")
    assert r.returncode == 0, r.stderr
    data = yaml.safe_load((repo / "deploy.yaml").read_text())
    assert data["frontend"]["path"] == "web" and data["frontend"]["framework"] == "nextjs"
    assert data["frontend"]["api_url_env"] == "NEXT_PUBLIC_API_URL"
    assert "frontend" in data["environments"]["dev"] and data["environments"]["dev"]["frontend"] is None
    assert data["environments"]["prod"]["frontend"] == {"production": True}
    v = deployctl(repo, "validate")
    assert v.returncode == 0, v.stderr
    c = deployctl(repo, "config", "--env", "prod", "--json")
    assert c.returncode == 0, c.stderr
    assert '"production": true' in c.stdout


def test_init_without_a_frontend_directory_writes_no_frontend_section(repo: Path) -> None:
    assert deployctl(repo, "init", "--yes").returncode == 0
    assert "frontend" not in yaml.safe_load((repo / "deploy.yaml").read_text())


def test_the_build_context_leaves_out_deploy_yaml_tests_docs_infra_and_env(repo: Path) -> None:
    from deployctl.stages import context

    (repo / "docs").mkdir()
    (repo / "docs" / "index.md").write_text("# docs\n")
    (repo / "infra").mkdir()
    (repo / "infra" / "main.tf").write_text("# terraform\n")
    assert deployctl(repo, "init", "--yes").returncode == 0
    (repo / ".env").write_text("OPENAI_API_KEY=sk-local\n")
    files = context.load(repo, "Dockerfile").files
    assert "main.py" in files and "requirements.txt" in files
    for left_out in ("deploy.yaml", "tests/test_main.py", "docs/index.md", "infra/main.tf", ".env",
                     ".github/workflows/promote.yml"):
        assert left_out not in files, left_out
    assert ".env" in (repo / ".gitignore").read_text().split()


def test_build_essential_only_when_a_dependency_compiles(repo: Path) -> None:
    assert deployctl(repo, "init", "--yes").returncode == 0
    builder = (repo / "Dockerfile").read_text().split(" AS runtime")[0]
    first_install = builder.split("RUN pip install")[1].split("||")[0]
    assert "--only-binary=:all:" in first_install  # wheels only: no compilers unless that fails
    assert "RUN apt-get" not in builder


def test_an_adopted_multi_stage_dockerfile_builds_its_service_and_tests_in_its_test_stage(tmp_path: Path) -> None:
    """Its last stage is `FROM production AS test`: deploy.yaml builds `production`, runs the tests in
    `test`, and the .dockerignore written next to it leaves what its COPY lines name in the context."""
    from deployctl.stages import context

    d = tmp_path / "own-multistage"
    shutil.copytree(ROOT / "tests" / "corpus" / "multistage-test", d)
    git(d, "init", "-q", "-b", "main")
    r = deployctl(d, "init", "--yes")
    assert r.returncode == 0, r.stderr
    assert "kept Dockerfile (build target: production; tests run in its `test` stage)" in r.stdout
    assert re.search(r"build target\s+production: the last stage whose command starts the server", r.stderr)
    assert (d / "Dockerfile").read_text() == (ROOT / "tests/corpus/multistage-test/Dockerfile").read_text()
    data = yaml.safe_load((d / "deploy.yaml").read_text())
    assert data["image"]["target"] == "production"
    assert data["stages"] == {"test": {"run": ["python -m pytest -q"], "in": "image", "target": "test",
                                       "timeout": "15m"}}
    patterns = [ln.strip() for ln in (d / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    for kept in ("tests", "tests/test_main.py", "main.py", "requirements.txt"):
        assert not ignored(patterns, kept), kept
    for secret in (".env", "config/.env", ".git/HEAD", "key.pem"):
        assert ignored(patterns, secret), secret
    (d / ".env").write_text("OPENAI_API_KEY=sk-local\n")
    files = context.load(d, "Dockerfile").files
    assert "tests/test_main.py" in files and ".env" not in files
    assert deployctl(d, "validate").returncode == 0


def _unresolved_includes(root: Path, stage: dict[str, object]) -> tuple[str, list[str]]:
    """(the file the stage's `pip install -r` reads, the includes it cannot find in the image):
    what the stage's COPY lines put where, followed the way pip follows `-r`/`-c`."""
    import posixpath

    workdir, placed, target = "/", {}, ""
    for op, arg in stage["ops"]:  # type: ignore[attr-defined]
        if op == "WORKDIR":
            workdir = posixpath.join(workdir, arg)
        elif op == "COPY" and not arg.startswith("--from"):
            *sources, dest = [w for w in arg.split() if not w.startswith("--")]
            into = posixpath.join(workdir, dest)
            for src in sources:
                for host in sorted(root.glob(src)):
                    placed[posixpath.normpath(posixpath.join(into, host.name) if dest.endswith("/") or
                                              len(sources) > 1 else into)] = host
        elif op == "RUN" and "-r " in arg:
            target = posixpath.normpath(posixpath.join(workdir, arg.split("-r ", 1)[1].split()[0]))
    assert target in placed, (target, placed)
    missing, todo, seen = [], [target], set()
    while todo:
        path = todo.pop()
        seen.add(path)
        for line in placed[path].read_text().splitlines():
            if line.startswith(("-r ", "-c ")):
                inc = posixpath.normpath(posixpath.join(posixpath.dirname(path), line.split()[1]))
                if inc not in placed:
                    missing.append(inc)
                elif inc not in seen:
                    todo.append(inc)
    return target, missing


def test_requirement_includes_resolve_in_the_image_in_a_src_layout(tmp_path: Path) -> None:
    """requirements-dev.txt at the root starts with `-r src/requirements.txt`: the test stage must
    copy both so pip finds the include (flat copies into one directory broke it)."""
    d = tmp_path / "srcapp"
    (d / "src" / "chat").mkdir(parents=True)
    (d / "tests").mkdir()
    (d / "src" / "chat" / "__init__.py").write_text("")
    (d / "src" / "chat" / "main.py").write_text(APP_PY)
    (d / "src" / "requirements.txt").write_text("-c constraints.txt\nfastapi==0.115.6\nuvicorn==0.32.1\n")
    (d / "src" / "constraints.txt").write_text("starlette<0.42\n")
    (d / "requirements-dev.txt").write_text("-r src/requirements.txt\npytest==8.3.4\nhttpx==0.28.1\n")
    (d / "tests" / "test_main.py").write_text("def test_nothing():\n    assert True\n")
    git(d, "init", "-q", "-b", "main")
    r = deployctl(d, "init", "--yes")
    assert r.returncode == 0, r.stderr
    parsed = {st["name"]: st for st in stages((d / "Dockerfile").read_text())}
    assert yaml.safe_load((d / "deploy.yaml").read_text())["stages"]["test"]["target"] == "test"
    target, missing = _unresolved_includes(d, parsed["test"])
    assert target == "/tmp/requirements/requirements-dev.txt" and missing == []
    target, missing = _unresolved_includes(d, parsed["builder"])
    assert target == "/src/requirements.txt" and missing == []


def test_a_dev_run_quotes_no_fargate_cost(repo: Path) -> None:
    """`run --env dev` says what a deploy costs; dev runs on the local engine, not on ECS, so
    that line has no Fargate price (while staging's, on ECS, has one)."""
    from deployctl.adapters.git import GitFacts
    from deployctl.config import load_env, read
    from deployctl.plan import make_plan
    from deployctl.targets import for_config

    assert deployctl(repo, "init", "--yes").returncode == 0
    git_facts = GitFacts(sha="3f2a9c41d0b7e6f5a4c3b2a1908f7e6d5c4b3a29", branch="main")
    lines = {}
    for env_name in ("dev", "staging"):
        cfg = load_env(read(repo / "deploy.yaml", environ={}), env_name)
        lines[env_name] = for_config(cfg).cost_line(make_plan(cfg, git_facts))
    assert lines["dev"] == "cost: local Docker engine, no cloud charges"
    assert "Fargate" not in lines["dev"] and "$" not in lines["dev"]
    assert "$" in lines["staging"]


def test_a_kept_dockerignore_that_excludes_what_the_dockerfile_copies_is_named(tmp_path: Path) -> None:
    """Re-running init after a failed build: the project's own .dockerignore is kept, and init says
    which of its lines breaks the adopted Dockerfile's `COPY tests/ tests/`."""
    d = tmp_path / "own-multistage"
    shutil.copytree(ROOT / "tests" / "corpus" / "multistage-test", d)
    (d / ".dockerignore").write_text(".env\ntests/\n")
    git(d, "init", "-q", "-b", "main")
    r = deployctl(d, "init", "--yes")
    assert r.returncode == 0, r.stderr
    assert (d / ".dockerignore").read_text() == ".env\ntests/\n"
    warning = " ".join(r.stderr.split())
    assert "warning: .dockerignore excludes tests, which Dockerfile copies (COPY/ADD): that build step fails" \
        in warning


def test_lint_without_a_tool_in_the_test_stage_runs_on_the_host_and_ci_installs_only_it(tmp_path: Path) -> None:
    """The project configures ruff but its Dockerfile's test stage installs only pytest: the test
    stage runs in the image, lint on the machine; CI prepares ruff for lint and nothing for test."""
    d = tmp_path / "own-multistage"
    shutil.copytree(ROOT / "tests" / "corpus" / "multistage-test", d)
    (d / "pyproject.toml").write_text("[tool.ruff]\nline-length = 100\n")
    git(d, "init", "-q", "-b", "main")
    r = deployctl(d, "init", "--yes")
    assert r.returncode == 0, r.stderr
    data = yaml.safe_load((d / "deploy.yaml").read_text())
    assert data["stages"]["lint"] == {"run": ["python -m ruff check ."], "timeout": "5m"}
    assert data["stages"]["test"]["in"] == "image" and data["stages"]["test"]["target"] == "test"
    workflow = (d / ".github/workflows/deploy-staging.yml").read_text()
    assert "ruff" in workflow and "pytest" not in workflow
