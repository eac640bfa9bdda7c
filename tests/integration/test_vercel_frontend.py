"""The frontend on Vercel beside the ECS backend, through the real CLI: contract tests against the
Vercel SIMULATION (tests/simulation/vercel_api.py, over real HTTP) with the backend on moto and the
ECS rollout simulation (the release tests' `project`: staging, and prod promoted from staging).

What only real Vercel proves is listed in docs/frontend-vercel.md ("What the tests do not prove").
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import git
from tests.simulation import vercel_api as vercel_sim
from tests.simulation.vercel_api import PROJECT, TEAM, Script, VercelSim
from tests.support.release_project import Project

SIM_PHASES = {"start_s": 0.1, "healthy_s": 0.1, "fail_s": 0.1, "drain_s": 0.05, "bake_s": 0.1}


@pytest.fixture
def vercel(monkeypatch: pytest.MonkeyPatch) -> Iterator[VercelSim]:
    for sim in vercel_sim.running():
        for key, value in sim.env().items():
            monkeypatch.setenv(key, value)
        yield sim


def with_frontend(project: Project, **frontend: Any) -> Project:
    """The project with a Next.js-like frontend directory and a `frontend:` section: staging gets
    its backend URL from api_url, prod is Vercel production, and a preview environment."""
    web = project.path / "web"
    (web / "app").mkdir(parents=True)
    (web / "package.json").write_text('{"name": "chat-web", "scripts": {"build": "next build"}}\n')
    (web / "app" / "page.tsx").write_text("export default function Page() { return <main>chat</main> }\n")
    (web / ".gitignore").write_text("node_modules\n.env\n")
    (web / ".vercelignore").write_text("drafts/\n")
    (web / "drafts").mkdir()
    (web / "drafts" / "notes.md").write_text("not for upload\n")
    (web / "node_modules").mkdir()
    (web / "node_modules" / "huge.js").write_text("// vendored\n")
    (web / ".env").write_text("SESSION_SECRET=do-not-upload\n")
    # git's rules from the repository root down: a root .gitignore line and a nested one.
    root_ignore = project.path / ".gitignore"
    root_ignore.write_text((root_ignore.read_text() if root_ignore.exists() else "") + "web/private/\n")
    (web / "private").mkdir()
    (web / "private" / "notes.md").write_text("internal\n")
    (web / "app" / ".gitignore").write_text("*.log\n")
    (web / "app" / "debug.log").write_text("noise\n")
    doc = yaml.safe_load((project.path / "deploy.yaml").read_text())
    doc["frontend"] = {"path": "web", "project_id": PROJECT, "team_id": TEAM, "framework": "nextjs",
                       "build_env": {"NEXT_PUBLIC_SITE": "chat"}, "api_url_env": "NEXT_PUBLIC_API_URL",
                       "api_url": "https://api-{env}.example.com", "health_path": "/", "timeout": "20s",
                       **frontend}
    doc["environments"]["prod"]["frontend"] = {"production": True}
    preview = {**yaml.safe_load(yaml.safe_dump(doc["environments"]["staging"])), "preview": True}
    preview["services"] = {"api": {"load_balancer": None}}
    preview["frontend"] = {"api_url": "https://api-{name}.preview.example.com"}
    doc["environments"]["preview"] = preview
    (project.path / "deploy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    git(project.path, "add", "-A")
    git(project.path, "commit", "-qm", "frontend")
    return project


@pytest.fixture
def app(project: Project, vercel: VercelSim) -> Project:
    return with_frontend(project)


@pytest.fixture
def one_api(project: Project, vercel: VercelSim) -> Project:
    """Staging and prod frontends call the same public API URL: what they build in is the same."""
    return with_frontend(project, api_url="https://api.example.com")


def status(p: Project, env: str) -> dict[str, Any]:
    res = p.cli("status", "-f", p.file, "--env", env, "--json")
    assert res.code in (0, 1), res.text
    return dict(res.json())


# --- run ------------------------------------------------------------------------------------


def test_run_staging_deploys_backend_then_frontend_with_the_backend_url(app: Project, vercel: VercelSim) -> None:
    image = app.world.push("v1")
    res = app.run("staging", image)
    assert res.code == 0, res.text

    created = vercel.calls("POST", "/v13/deployments")
    body = created[-1].body
    assert body["project"] == PROJECT and body["name"] == "chat-api"
    assert body["projectSettings"] == {"framework": "nextjs"}
    # A staged production build (what `vercel --prod --skip-domain` makes): promotable as it is,
    # and production's domains stay where they were.
    assert body["target"] == "production" and body["autoAssignCustomDomains"] is False
    assert "customEnvironmentSlugOrId" not in body and vercel.production_of() is None
    assert body["build"]["env"] == {"NEXT_PUBLIC_SITE": "chat", "NEXT_PUBLIC_API_URL": "https://api-staging.example.com"}
    # .gitignore, .vercelignore and Vercel's defaults keep these out; the secret never goes up.
    assert sorted(f["file"] for f in body["files"]) == [".vercelignore", "app/page.tsx", "package.json"]
    assert "private/notes.md" not in res.text
    assert all(c.query.get("teamId") == TEAM for c in vercel.requests if not c.path.startswith("/_site"))
    # Uploads by content hash: the first create says which are missing; only those go up.
    uploads = vercel.calls("POST", "/v2/files")
    assert len(uploads) == 3 and len(created) == 2
    history = app.history("staging")
    dep = vercel.deployments[history[0]["frontend"]["id"]]
    assert dep["meta"]["deployctlRelease"] == history[0]["id"]
    assert dep["meta"]["deployctlDigest"] == image.rsplit("@", 1)[1]
    assert history[0]["frontend"]["state"] == "READY"
    assert f"frontend is at http://{vercel.host}/_site/{dep['id']}" in res.out
    # The site was checked on its health path before the release was called good.
    assert vercel.calls("GET", f"/_site/{dep['id']}/")

    st = status(app, "staging")
    assert st["ok"] is True and st["frontend"]["id"] == dep["id"] and st["frontend"]["healthy"] is True
    assert st["frontend"]["release"] == history[0]["id"]
    text = app.cli("status", "-f", app.file, "--env", "staging")
    assert f"frontend (vercel): {dep['id']} READY" in text.out

    # A second deploy of changed files: only the changed file is uploaded.
    (app.path / "web" / "app" / "page.tsx").write_text("export default function Page() { return <main>v2</main> }\n")
    git(app.path, "commit", "-qam", "v2")
    res = app.run("staging", app.world.push("v2"))
    assert res.code == 0, res.text
    assert len(vercel.calls("POST", "/v2/files")) == 4
    rows = app.cli("history", "-f", app.file, "--env", "staging").out
    assert "frontend" in rows.splitlines()[0] and "READY" in rows


def test_a_build_error_exits_1_with_the_build_logs_last_lines(app: Project, vercel: VercelSim) -> None:
    vercel.script_next(Script(states=("QUEUED", "BUILDING", "ERROR"), error="Command \"next build\" exited with 1",
                              log=("> next build", "Type error: 'x' is possibly 'undefined'.", "  at app/page.tsx:3:7",
                                   f"token in a log line: {vercel.token}")))
    res = app.run("staging", app.world.push("v1"))
    assert res.code == 1, res.text
    assert "ended ERROR" in res.text and "Command \"next build\" exited with 1" in res.text
    assert "Type error: 'x' is possibly 'undefined'." in res.text and "at app/page.tsx:3:7" in res.text
    assert vercel.token not in res.text  # the token is registered with the redactor
    assert status(app, "staging")["ok"] is False


def test_a_canceled_build_exits_1(app: Project, vercel: VercelSim) -> None:
    vercel.script_next(Script(states=("QUEUED", "CANCELED")))
    res = app.run("staging", app.world.push("v1"))
    assert res.code == 1 and "ended CANCELED" in res.text, res.text


def test_a_ready_deployment_that_does_not_answer_is_not_a_good_release(app: Project, vercel: VercelSim,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from deployctl.targets import vercel_target

    monkeypatch.setattr(vercel_target, "HEALTH_WAIT", 1.0)
    vercel.script_next(Script(site_status=500))
    res = app.run("staging", app.world.push("v1"))
    assert res.code == 1, res.text
    assert "is READY but" in res.text and "answered 500" in res.text


def test_429_is_retried_after_retry_after(app: Project, vercel: VercelSim) -> None:
    vercel.fail("POST", "/v13/deployments", 429, times=1, headers=vercel_sim.rate_limited(1),
                body={"error": {"code": "rate_limited", "message": "Rate limit exceeded"}})
    started = time.monotonic()
    res = app.run("staging", app.world.push("v1"))
    assert res.code == 0, res.text
    assert time.monotonic() - started >= 1.0
    assert app.history("staging")[0]["frontend"]["state"] == "READY"


def test_a_429_that_never_clears_exits_1_saying_so(app: Project, vercel: VercelSim) -> None:
    vercel.fail("POST", "/v13/deployments", 429, times=100, headers=vercel_sim.rate_limited(1),
                body={"error": {"code": "rate_limited", "message": "Rate limit exceeded"}})
    res = app.run("staging", app.world.push("v1"))
    assert res.code == 1, res.text
    assert "creating the deployment: Vercel's rate limit was hit and stayed hit (429)" in res.text
    assert "https://vercel.com/docs/limits" in res.text
    assert len(vercel.calls("POST", "/v13/deployments")) == 5  # the first try and 4 retries, then it gives up
    assert vercel.token not in res.text and not vercel.deployments


def test_an_api_call_that_times_out_exits_1(app: Project, vercel: VercelSim, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOYCTL_VERCEL_TIMEOUT", "1")
    vercel.fail("POST", "/v13/deployments", 0, times=1)  # the API never answers
    res = app.run("staging", app.world.push("v1"))
    assert res.code == 1, res.text
    assert f"creating the deployment: the Vercel API (http://{vercel.host}) did not answer within 1s" in res.text
    assert len(vercel.calls("POST", "/v13/deployments")) == 1  # a create is never repeated blindly
    assert app.history("staging")[0]["frontend"] is None  # the backend release stays; no frontend went up


def test_a_staged_build_that_takes_production_anyway_fails_the_run(app: Project, vercel: VercelSim) -> None:
    vercel.honour_skip_domain = False
    res = app.run("staging", app.world.push("v1"))
    assert res.code == 1, res.text
    staged = next(iter(vercel.deployments))
    assert f"Vercel made the staged frontend deployment {staged} of staging production" in res.text
    assert "Auto-assign Custom Production Domains" in res.text


def test_a_bad_token_exits_1_before_the_backend_moves(app: Project, vercel: VercelSim,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERCEL_TOKEN", "revoked-token-value-123")
    res = app.run("staging", app.world.push("v1"))
    assert res.code == 1, res.text
    assert "Vercel refused the token (401 Unauthorized)" in res.text and "VERCEL_TOKEN" in res.text
    assert "revoked-token-value-123" not in res.text
    assert app.history("staging") == []  # nothing was deployed


def test_no_token_is_a_usage_error(app: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VERCEL_TOKEN")
    res = app.run("staging", app.world.push("v1"))
    assert res.code == 2 and "VERCEL_TOKEN is not set" in res.text, res.text
    # status still shows the backend, and says why the frontend is unknown
    st = app.cli("status", "-f", app.file, "--env", "staging", "--json")
    assert st.code == 0 and st.json()["frontend"]["error"].endswith("VERCEL_TOKEN is not set")
    assert st.json()["ok"] is False and st.json()["services"][0]["service"] == "api"


def test_a_build_that_never_finishes_times_out_with_exit_1(project: Project, vercel: VercelSim) -> None:
    app = with_frontend(project, timeout="2s")
    vercel.script_next(Script(states=("QUEUED",) + ("BUILDING",) * 1000))
    res = app.run("staging", app.world.push("v1"))
    assert res.code == 1, res.text
    assert "was not READY after 2s (still BUILDING; its build was cancelled)" in res.text
    # Nothing is left building on Vercel.
    (dep,) = vercel.deployments.values()
    assert dep["readyState"] == "CANCELED" and vercel.calls("PATCH", f"/v12/deployments/{dep['id']}/cancel")


def test_a_secret_file_is_refused_before_anything_changes(app: Project, vercel: VercelSim) -> None:
    (app.path / "web" / ".gitignore").write_text("node_modules\n")  # .env no longer ignored
    git(app.path, "commit", "-qam", "oops")
    res = app.run("staging", app.world.push("v1"))
    assert res.code == 2, res.text
    assert "refusing to upload the frontend" in res.text and ".env" in res.text
    assert "do-not-upload" not in res.text
    assert not vercel.calls("POST", "/v2/files") and app.history("staging") == []


# --- promote, rollback ----------------------------------------------------------------------


def test_promote_then_rollback_moves_both_halves(one_api: Project, vercel: VercelSim) -> None:
    app = one_api
    assert app.run("staging", app.world.push("v1")).code == 0
    staging_v1 = app.history("staging")[0]["frontend"]["id"]
    res = app.cli("promote", "staging", "prod", "-f", app.file, "--yes")
    assert res.code == 0, res.text
    # The exact deployment staging runs is production now: promoted, not rebuilt.
    assert vercel.production_of() == staging_v1
    assert vercel.calls("POST", f"/v10/projects/{PROJECT}/promote/{staging_v1}")
    # The production domain was read back from Vercel's aliases; the git-branch domain is not production's.
    assert f"chat.example.com points at {staging_v1}" in res.out
    assert vercel.alias_of("chat.example.com") == staging_v1 and vercel.alias_of("develop.chat.example.com") is None
    assert len(vercel.calls("POST", "/v13/deployments")) == 2  # staging's only (create + after uploads)
    prod = app.history("prod")
    assert prod[0]["frontend"]["id"] == staging_v1

    (app.path / "web" / "package.json").write_text('{"name": "chat-web", "version": "2"}\n')
    git(app.path, "commit", "-qam", "v2")
    assert app.run("staging", app.world.push("v2")).code == 0
    staging_v2 = app.history("staging")[0]["frontend"]["id"]
    assert staging_v2 != staging_v1
    assert app.cli("promote", "staging", "prod", "-f", app.file, "--yes").code == 0
    assert vercel.production_of() == staging_v2
    assert status(app, "prod")["frontend"]["id"] == staging_v2

    res = app.cli("rollback", "-f", app.file, "--env", "prod", "--yes")
    assert res.code == 0, res.text
    assert f"frontend: {staging_v2} → {staging_v1}" in res.text
    # Both halves are back: the backend's previous image and Vercel's previous production deployment.
    assert vercel.calls("POST", f"/v1/projects/{PROJECT}/rollback/{staging_v1}")
    assert vercel.production_of() == staging_v1
    assert f"chat.example.com points at {staging_v1}" in res.out
    st = status(app, "prod")
    assert st["current"]["image_digest"] == prod[0]["image_digest"]
    assert st["frontend"]["id"] == staging_v1 and st["ok"] is True
    assert st["frontend"]["aliases"] == ["chat.example.com"]
    assert "aliases: chat.example.com" in app.cli("status", "-f", app.file, "--env", "prod").out
    assert app.history("prod")[0]["kind"] == "rollback"
    assert app.history("prod")[0]["frontend"]["id"] == staging_v1

    # After an instant rollback Vercel assigns no domains to new production builds by itself:
    # the next promote serves the new build and moves the domain with it.
    (app.path / "web" / "package.json").write_text('{"name": "chat-web", "version": "3"}\n')
    git(app.path, "commit", "-qam", "v3")
    assert app.run("staging", app.world.push("v3")).code == 0
    staging_v3 = app.history("staging")[0]["frontend"]["id"]
    assert vercel.production_of() == staging_v1  # staging's build did not take production
    assert app.cli("promote", "staging", "prod", "-f", app.file, "--yes").code == 0
    assert vercel.production_of() == staging_v3 and vercel.alias_of("chat.example.com") == staging_v3


def test_a_production_domain_that_does_not_follow_the_promote_fails_it(project: Project, vercel: VercelSim) -> None:
    app = with_frontend(project, api_url="https://api.example.com", timeout="3s")
    assert app.run("staging", app.world.push("v1")).code == 0
    assert app.cli("promote", "staging", "prod", "-f", app.file, "--yes").code == 0
    first = vercel.production_of()
    vercel.pin_alias("chat.example.com")  # e.g. aliased by hand: it stays where it is
    (app.path / "web" / "package.json").write_text('{"name": "chat-web", "version": "2"}\n')
    git(app.path, "commit", "-qam", "v2")
    assert app.run("staging", app.world.push("v2")).code == 0
    res = app.cli("promote", "staging", "prod", "-f", app.file, "--yes")
    assert res.code == 1, res.text
    second = app.history("staging")[0]["frontend"]["id"]
    assert (f"production serves {second} but not every production domain points at it: "
            f"chat.example.com → {first}") in res.text
    assert "Settings → Domains" in res.text


def test_a_production_deploy_after_an_instant_rollback_is_promoted_to_serve(project: Project,
                                                                            vercel: VercelSim) -> None:
    app = with_frontend(project)
    doc = yaml.safe_load((app.path / "deploy.yaml").read_text())
    doc["environments"]["staging"]["frontend"] = {"production": True}  # staging is the project's production
    doc["environments"]["prod"]["frontend"] = None
    (app.path / "deploy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    git(app.path, "commit", "-qam", "staging is production")
    ids = []
    for n in (1, 2):
        (app.path / "web" / "package.json").write_text(f'{{"name": "chat-web", "version": "{n}"}}\n')
        git(app.path, "commit", "-qam", f"v{n}")
        assert app.run("staging", app.world.push(f"v{n}")).code == 0
        ids.append(vercel.production_of())
    assert ids[0] != ids[1]
    res = app.cli("rollback", "-f", app.file, "--env", "staging", "--yes")
    assert res.code == 0 and vercel.production_of() == ids[0], res.text

    (app.path / "web" / "package.json").write_text('{"name": "chat-web", "version": "3"}\n')
    git(app.path, "commit", "-qam", "v3")
    res = app.run("staging", app.world.push("v3"))
    assert res.code == 0, res.text
    third = app.history("staging")[0]["frontend"]["id"]
    assert "production does not serve" in res.text and "promoting it" in res.text
    assert vercel.production_of() == third and vercel.alias_of("chat.example.com") == third
    assert status(app, "staging")["frontend"]["id"] == third


def test_promote_is_refused_when_staging_has_no_frontend_for_its_image(one_api: Project, vercel: VercelSim) -> None:
    app = one_api
    vercel.script_next(Script(states=("QUEUED", "ERROR")))
    assert app.run("staging", app.world.push("v1")).code == 1  # backend went out, the frontend did not
    before = len(app.history("prod"))
    res = app.cli("promote", "staging", "prod", "-f", app.file, "--yes")
    assert res.code == 1, res.text
    assert "no READY frontend deployment" in res.text
    assert len(app.history("prod")) == before and vercel.production_of() is None


def test_a_custom_environment_build_is_not_promoted_because_vercel_would_rebuild_it(
        project: Project, vercel: VercelSim) -> None:
    app = with_frontend(project, api_url="https://api.example.com")
    doc = yaml.safe_load((app.path / "deploy.yaml").read_text())
    doc["environments"]["staging"]["frontend"] = {"custom_environment": True}
    (app.path / "deploy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    git(app.path, "commit", "-qam", "staging in a custom environment")
    assert app.run("staging", app.world.push("v1")).code == 0
    res = app.cli("promote", "staging", "prod", "-f", app.file, "--yes")
    assert res.code == 1, res.text
    assert "a deployment of the custom environment staging" in res.text
    assert "Vercel promotes only production deployments as they are" in res.text and "nothing was changed" in res.text
    # Refused before anything moved: neither half of prod changed.
    assert app.history("prod") == [] and vercel.production_of() is None
    assert not vercel.calls("POST", "/v10/projects")


def test_promote_refuses_a_frontend_built_with_stagings_backend_url(app: Project, vercel: VercelSim) -> None:
    assert app.run("staging", app.world.push("v1")).code == 0
    staging = app.history("staging")[0]["frontend"]["id"]
    res = app.cli("promote", "staging", "prod", "-f", app.file, "--yes")
    assert res.code == 2, res.text
    assert "NEXT_PUBLIC_API_URL is built into the frontend" in res.text
    assert "https://api-staging.example.com, but prod's backend is at https://api-prod.example.com" in res.text
    assert "--allow-frontend-api-url-mismatch" in res.text
    assert app.history("prod") == [] and vercel.production_of() is None
    assert not vercel.calls("POST", "/v10/projects")

    res = app.cli("promote", "staging", "prod", "-f", app.file, "--yes", "--allow-frontend-api-url-mismatch")
    assert res.code == 0, res.text
    assert vercel.production_of() == staging and app.history("prod")[0]["frontend"]["id"] == staging


# --- previews -------------------------------------------------------------------------------


def test_preview_run_and_destroy(app: Project, vercel: VercelSim, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    image = app.world.push("v1")
    outputs = tmp_path / "github-output"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    res = app.run("preview", image, "--name", "pr-42")
    assert res.code == 0, res.text
    # The step outputs the preview workflow's PR comment shows: both URLs.
    written = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert written["frontend_url"].startswith(f"http://{vercel.host}/_site/dpl_")
    assert written["backend_url"] == "https://api-pr-42.preview.example.com"
    body = vercel.calls("POST", "/v13/deployments")[-1].body
    assert body["meta"]["deployctlPreview"] == "pr-42"
    assert body["build"]["env"]["NEXT_PUBLIC_API_URL"] == "https://api-pr-42.preview.example.com"
    dep_id = next(iter(vercel.deployments))
    assert f"frontend is at http://{vercel.host}/_site/{dep_id}" in res.out

    res = app.cli("destroy", "-f", app.file, "--env", "preview", "--name", "pr-42", "--yes")
    assert res.code == 0, res.text
    assert f"removed Vercel deployment {dep_id}" in res.out
    assert vercel.calls("DELETE", f"/v13/deployments/{dep_id}") and not vercel.deployments


def test_a_custom_environment_is_named_after_the_deploy_environment(project: Project, vercel: VercelSim) -> None:
    app = with_frontend(project, custom_environment=True)
    assert app.run("staging", app.world.push("v1")).code == 0
    assert vercel.calls("POST", "/v13/deployments")[-1].body["customEnvironmentSlugOrId"] == "staging"


def test_rollback_of_staging_brings_back_the_frontend_built_for_that_release(app: Project, vercel: VercelSim) -> None:
    assert app.run("staging", app.world.push("v1")).code == 0
    first = app.history("staging")[0]["frontend"]["id"]
    (app.path / "web" / "package.json").write_text('{"name": "chat-web", "version": "2"}\n')
    git(app.path, "commit", "-qam", "v2")
    assert app.run("staging", app.world.push("v2")).code == 0
    second = status(app, "staging")["frontend"]["id"]
    assert second != first

    res = app.cli("rollback", "-f", app.file, "--env", "staging", "--yes")
    assert res.code == 0, res.text
    assert f"frontend: {second} → {first}" in res.text
    st = status(app, "staging")
    assert st["frontend"]["id"] == first and st["ok"] is True
    newest = app.history("staging")[0]
    assert newest["kind"] == "rollback" and newest["frontend"]["id"] == first
    assert not vercel.calls("POST", "/v1/projects")  # staging is not production: no Vercel rollback call
