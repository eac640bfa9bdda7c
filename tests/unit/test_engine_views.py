"""Typed views of Docker Engine image inspect answers (recorded shapes, keys left out)."""

from __future__ import annotations

from deployctl.adapters.engine_view import ImageHealthcheck, ImageView

INSPECT = {
    "Id": "sha256:" + "a" * 64,
    "RepoDigests": ["127.0.0.1:5000/chat-api@sha256:" + "b" * 64, "registry.example/chat-api@sha256:" + "c" * 64],
    "Size": 229_200_000,
    "Config": {
        "WorkingDir": "/app",
        "Labels": {"deployctl.inputs": "abc123"},
        "Healthcheck": {"Test": ["CMD", "python", "-c", "probe"], "Interval": 10_000_000_000,
                        "StartPeriod": 30_000_000_000, "Retries": 5},
    },
}


def test_an_image_inspect_answer_reads_as_a_view() -> None:
    view = ImageView.from_inspect(INSPECT)
    assert view.id == "sha256:" + "a" * 64 and view.size == 229_200_000
    assert view.working_dir == "/app" and view.labels == {"deployctl.inputs": "abc123"}
    assert view.digest_in("127.0.0.1:5000/chat-api") == "sha256:" + "b" * 64
    assert view.digest_in("registry.example/chat-api") == "sha256:" + "c" * 64
    assert view.digest_in("127.0.0.1:5000/other") == ""
    # Timings the HEALTHCHECK left out take Docker's defaults (timeout 30 s).
    assert view.healthcheck == ImageHealthcheck(("CMD", "python", "-c", "probe"), interval=10.0, timeout=30.0,
                                                start_period=30.0, retries=5)


def test_absent_keys_read_as_empty_not_errors() -> None:
    view = ImageView.from_inspect({"Id": "sha256:1", "Config": None, "RepoDigests": None})
    assert (view.size, view.working_dir, dict(view.labels), view.repo_digests, view.healthcheck) == (
        0, "", {}, (), None)
    assert ImageView.from_inspect({}).id == ""


def test_healthcheck_none_means_no_healthcheck() -> None:
    assert ImageHealthcheck.from_config({"Test": ["NONE"]}) is None
    assert ImageHealthcheck.from_config({"Test": []}) is None
    assert ImageHealthcheck.from_config(None) is None
    assert ImageHealthcheck.from_config({"Test": ["CMD-SHELL", "curl -f localhost"]}) == ImageHealthcheck(
        ("CMD-SHELL", "curl -f localhost"))
