"""deployctl.adapters.vercel against the Vercel API SIMULATION over real HTTP: retries on 429
(Retry-After honoured) and 5xx, per-call timeouts, and the messages people read for 401/403/404."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deployctl.adapters.vercel import MissingFiles, VercelClient, VercelError
from deployctl.errors import EXIT_FAILED
from tests.simulation import vercel_api as vercel_sim
from tests.simulation.vercel_api import PROJECT, TEAM, VercelSim


@pytest.fixture
def sim() -> Iterator[VercelSim]:
    yield from vercel_sim.running()


def client(sim: VercelSim, *, token: str | None = None, waits: list[float] | None = None,
           timeout: float = 5.0) -> VercelClient:
    return VercelClient(token or sim.token, TEAM, base_url=sim.url, timeout=timeout, retries=3, backoff=0.01,
                        sleep=(waits.append if waits is not None else lambda s: None))


def test_429_waits_as_retry_after_says_then_succeeds(sim: VercelSim) -> None:
    waits: list[float] = []
    sim.fail("GET", "/v9/projects", 429, times=2, headers=vercel_sim.rate_limited(7))
    assert client(sim, waits=waits).get_project(PROJECT)["id"] == PROJECT
    assert waits == [7.0, 7.0]


def test_429_without_retry_after_uses_x_ratelimit_reset(sim: VercelSim) -> None:
    waits: list[float] = []
    headers = vercel_sim.rate_limited(30)
    del headers["Retry-After"]
    sim.fail("GET", "/v9/projects", 429, headers=headers)
    client(sim, waits=waits).get_project(PROJECT)
    assert len(waits) == 1 and 25 <= waits[0] <= 30


def test_a_limit_that_resets_too_late_fails_with_when(sim: VercelSim) -> None:
    sim.fail("GET", "/v9/projects", 429, headers=vercel_sim.rate_limited(3600))
    with pytest.raises(VercelError) as err:
        client(sim).get_project(PROJECT)
    assert err.value.exit_code == EXIT_FAILED
    assert "rate limit" in err.value.message and "resets in" in err.value.message


def test_5xx_is_retried_on_reads_but_not_on_a_create(sim: VercelSim) -> None:
    sim.fail("GET", "/v9/projects", 500, times=2)
    assert client(sim).get_project(PROJECT)["id"] == PROJECT
    sim.fail("POST", "/v13/deployments", 500, times=1)
    with pytest.raises(VercelError) as err:
        client(sim).create_deployment({"name": "x", "project": PROJECT, "files": [{"file": "a", "sha": "0" * 40}]})
    assert err.value.status == 500 and "vercel-status.com" in (err.value.hint or "")
    assert len(sim.calls("POST", "/v13/deployments")) == 1  # a create is never repeated blindly


def test_503_is_retried_even_on_a_create(sim: VercelSim) -> None:
    sim.fail("POST", "/v13/deployments", 503, times=1)
    with pytest.raises(MissingFiles):  # the second attempt reached the API
        client(sim).create_deployment({"name": "x", "project": PROJECT, "files": [{"file": "a", "sha": "0" * 40}]})


def test_401_and_403_say_what_to_do_and_never_show_the_token(sim: VercelSim) -> None:
    with pytest.raises(VercelError) as err:
        client(sim, token="not-the-token-abc").get_project(PROJECT)
    assert "401" in err.value.message and "VERCEL_TOKEN" in (err.value.hint or "")
    assert "not-the-token-abc" not in str(err.value)
    bad_team = VercelClient(sim.token, "team_other", base_url=sim.url, retries=0)
    with pytest.raises(VercelError) as err:
        bad_team.get_project(PROJECT)
    assert "403" in err.value.message and "frontend.team_id" in (err.value.hint or "")


def test_a_missing_project_is_a_404_pointing_at_deploy_yaml(sim: VercelSim) -> None:
    with pytest.raises(VercelError) as err:
        client(sim).get_project("prj_nope")
    assert "404" in err.value.message and "frontend.project_id" in (err.value.hint or "")


def test_a_call_that_hangs_times_out(sim: VercelSim) -> None:
    sim.fail("GET", "/v9/projects", 0, times=10)
    with pytest.raises(VercelError) as err:
        client(sim, timeout=0.3).get_project(PROJECT)
    assert "did not answer within 0.3s" in err.value.message


def test_upload_by_sha_then_create_and_read(sim: VercelSim) -> None:
    c = client(sim)
    data = b"<html>hi</html>"
    import hashlib

    sha = hashlib.sha1(data).hexdigest()
    body = {"name": "web", "project": PROJECT, "files": [{"file": "index.html", "sha": sha, "size": len(data)}]}
    with pytest.raises(MissingFiles) as missing:
        c.create_deployment(body)
    assert missing.value.shas == [sha]
    c.upload(sha, data)
    assert sim.calls("POST", "/v2/files")[0].headers["x-vercel-digest"] == sha
    created = c.create_deployment(body)
    assert created.state == "QUEUED"
    assert [c.get_deployment(created.id).state for _ in range(3)] == ["BUILDING", "READY", "READY"]
    assert [d.id for d in c.list_deployments(PROJECT)] == [created.id]
    c.delete_deployment(created.id)
    assert c.list_deployments(PROJECT) == []


def test_the_build_log_tail_is_the_last_lines_in_order(sim: VercelSim) -> None:
    import hashlib

    from tests.simulation.vercel_api import Script

    sim.script_next(Script(states=("QUEUED", "ERROR"), log=tuple(f"line {i}" for i in range(50))))
    c = client(sim)
    c.upload(hashlib.sha1(b"x").hexdigest(), b"x")
    created = c.create_deployment({"name": "w", "project": PROJECT,
                                   "files": [{"file": "a", "sha": hashlib.sha1(b"x").hexdigest(), "size": 1}]})
    assert c.get_deployment(created.id).state == "ERROR"
    assert c.build_log(created.id, last=5) == [f"line {i}" for i in range(45, 50)]


def test_the_promote_endpoint_refuses_a_preview_and_serves_a_staged_production_build(sim: VercelSim) -> None:
    import hashlib

    c = client(sim)
    c.upload(hashlib.sha1(b"x").hexdigest(), b"x")
    files = [{"file": "a", "sha": hashlib.sha1(b"x").hexdigest(), "size": 1}]
    preview = c.create_deployment({"name": "w", "project": PROJECT, "files": files})
    staged = c.create_deployment({"name": "w", "project": PROJECT, "files": files, "target": "production",
                                  "autoAssignCustomDomains": False})
    for d in (preview, staged):
        while c.get_deployment(d.id).state != "READY":
            pass
    assert "targets" not in c.get_project(PROJECT)  # the staged build did not take production
    with pytest.raises(VercelError) as err:
        c.promote(PROJECT, preview.id)
    assert err.value.status == 400 and err.value.code == "not_production_deployment"
    c.promote(PROJECT, staged.id)
    assert c.get_project(PROJECT)["targets"]["production"]["id"] == staged.id


def test_listing_deployments_follows_every_page(sim: VercelSim) -> None:
    import hashlib

    c = client(sim)
    c.upload(hashlib.sha1(b"x").hexdigest(), b"x")
    files = [{"file": "a", "sha": hashlib.sha1(b"x").hexdigest(), "size": 1}]
    made = [c.create_deployment({"name": "w", "project": PROJECT, "files": files}).id for _ in range(7)]
    found = c.list_deployments(PROJECT, limit=3)
    assert [d.id for d in found] == list(reversed(made))  # newest first, none lost
    pages = sim.calls("GET", "/v6/deployments")
    assert len(pages) == 3 and "until" not in pages[0].query
    assert pages[1].query["until"] == str(sim.deployments[made[4]]["createdAt"])
