"""The build context: .dockerignore, the secret-file refusal, the inputs hash, the tar, stage
selection and image references. Pure code on real files in tmp dirs; no daemon needed."""

from __future__ import annotations

import os
import tarfile
import time
from pathlib import Path

import pytest

from deployctl.adapters.registry import ImageRef, is_loopback
from deployctl.errors import StageFailed, UsageError
from deployctl.stages import context as bc
from deployctl.stages.context_check import SecretsRefused, refuse_secrets, secret_files

PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\n"
PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIDdz\n-----END CERTIFICATE-----\n"


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


APP = {
    "Dockerfile": "FROM scratch\nCOPY . /\n",
    "app/main.sh": "echo hi\n",
    "app/data/model.bin": "weights",
    "app/data/keep.bin": "keep",
    "docs/readme.md": "docs",
    "docs/deep/x.md": "x",
    "node_modules/a/index.js": "js",
    "build.log": "log",
    "src/a.log": "log",
    ".git/HEAD": "ref: refs/heads/main\n",
}


@pytest.mark.parametrize(("ignore", "expected"), [
    ("", sorted(APP)),
    ("*.log\n", sorted(set(APP) - {"build.log"})),  # * stays in the top directory
    ("**/*.log\n", sorted(set(APP) - {"build.log", "src/a.log"})),
    ("docs\n", sorted(set(APP) - {"docs/readme.md", "docs/deep/x.md"})),  # a dir takes its contents
    ("/docs/\n# comment\n\n", sorted(set(APP) - {"docs/readme.md", "docs/deep/x.md"})),
    ("app/data\n!app/data/keep.bin\n", sorted(set(APP) - {"app/data/model.bin"})),  # ! re-includes
    ("app/data/*\n!app/data/keep.bin\napp/data/keep.bin\n", sorted(set(APP) - {"app/data/model.bin",
                                                                                "app/data/keep.bin"})),
    ("*\n!app\n", ["Dockerfile", "app/data/keep.bin", "app/data/model.bin", "app/main.sh"]),
    ("node_modules\n.git\nDockerfile\n", sorted(set(APP) - {"node_modules/a/index.js", ".git/HEAD"})),
    ("docs/*/x.md\napp/?ain.sh\n", sorted(set(APP) - {"docs/deep/x.md", "app/main.sh"})),
])
def test_dockerignore_rules(tmp_path: Path, ignore: str, expected: list[str]) -> None:
    tree(tmp_path, {**APP, ".dockerignore": ignore} if ignore else APP)
    ctx = bc.load(tmp_path, "Dockerfile")
    files = [f for f in ctx.files if f != ".dockerignore"]
    assert files == expected


def test_missing_context_and_dockerfile(tmp_path: Path) -> None:
    with pytest.raises(StageFailed, match="does not exist"):
        bc.load(tmp_path / "nope", "Dockerfile")
    with pytest.raises(StageFailed, match="no Dockerfile at"):
        bc.load(tmp_path, "Dockerfile")


def test_tar_holds_exactly_the_listed_files(tmp_path: Path) -> None:
    root = tree(tmp_path / "ctx", {**APP, ".dockerignore": "docs\n"})
    os.symlink("main.sh", root / "app" / "link.sh")
    (root / "app" / "main.sh").chmod(0o755)
    ctx = bc.load(root, "Dockerfile")
    with tarfile.open(fileobj=bc.make_tar(ctx)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(n for n, m in members.items() if not m.isdir()) == ctx.files
        assert members["app/link.sh"].issym() and members["app/link.sh"].linkname == "main.sh"
        assert members["app/main.sh"].mode == 0o755 and members["app/main.sh"].uid == 0
        assert tar.extractfile("app/data/model.bin").read() == b"weights"  # type: ignore[union-attr]


def test_dockerfile_outside_the_context_is_added(tmp_path: Path) -> None:
    tree(tmp_path, {"ctx/a.txt": "a", "docker/Dockerfile.prod": "FROM scratch\n"})
    ctx = bc.load(tmp_path / "ctx", "../docker/Dockerfile.prod")
    assert ctx.dockerfile_name.startswith(".dockerfile.")
    with tarfile.open(fileobj=bc.make_tar(ctx)) as tar:
        assert tar.extractfile(ctx.dockerfile_name).read() == b"FROM scratch\n"  # type: ignore[union-attr]


# --- inputs hash ----------------------------------------------------------------------------


def inputs(root: Path, **kw: object) -> str:
    args = {"target": "runtime", "build_args": {"A": "1"}, "platform": "linux/amd64", **kw}
    return bc.inputs_hash(bc.load(root, "Dockerfile"), **args)  # type: ignore[arg-type]


def test_inputs_hash_follows_contents_not_timestamps_or_git(tmp_path: Path) -> None:
    root = tree(tmp_path, APP)
    first = inputs(root)
    assert inputs(root) == first
    os.utime(root / "app" / "main.sh", (1, 1))
    (root / ".git" / "index").write_text("git bookkeeping")
    assert inputs(root) == first
    assert inputs(root, target="build") != first
    assert inputs(root, build_args={"A": "2"}) != first
    assert inputs(root, platform="linux/arm64") != first
    (root / "app" / "main.sh").chmod(0o755)
    assert inputs(root) != first
    (root / "app" / "main.sh").chmod(0o644)
    assert inputs(root) == first
    (root / "app" / "main.sh").write_text("echo bye\n")
    assert inputs(root) != first


def test_hash_cache_reuses_and_notices_rewrites(tmp_path: Path) -> None:
    root = tree(tmp_path / "ctx", {"Dockerfile": "FROM scratch\n", "model.bin": "aaaa"})
    old = time.time() - 60
    for name in ("Dockerfile", "model.bin"):
        os.utime(root / name, (old, old))
    # ctime cannot be set back; wait out the racy window instead of faking it.
    time.sleep(2.1)
    cache_file = tmp_path / "cache.json"
    cache = bc.HashCache(cache_file)
    first = inputs(root, cache=cache)
    cache.save()
    assert cache_file.exists()
    assert inputs(root, cache=bc.HashCache(cache_file)) == first
    # Same size and mtime, other bytes: the ctime moves, so the cache is not fooled.
    (root / "model.bin").write_text("bbbb")
    os.utime(root / "model.bin", (old, old))
    assert inputs(root, cache=bc.HashCache(cache_file)) != first


# --- secret files ---------------------------------------------------------------------------


def test_secret_files_are_found_with_few_false_alarms(tmp_path: Path) -> None:
    root = tree(tmp_path, {
        "Dockerfile": "FROM scratch\n", ".env": "A=1", "config/.env.production": "A=1",
        ".env.example": "A=", "certs/server.pem": PEM_KEY, "certs/ca.pem": PEM_CERT,
        "tls.key": "k", "home/.aws/credentials": "x", "id_rsa": "k", "id_rsa.pub": "ssh-rsa AAA",
        ".npmrc": "//registry/:_authToken=x", "gcp/credentials.json": "{}", "app/main.py": "print()",
    })
    found = secret_files(bc.load(root, "Dockerfile"))
    assert found == [".env", ".npmrc", "certs/server.pem", "config/.env.production", "gcp/credentials.json",
                     "home/.aws/", "id_rsa", "tls.key"]


@pytest.mark.parametrize("path", [
    "app.env", "deploy/prod.env", ".envrc", ".pgpass", ".vault-token", ".s3cfg", ".my.cnf",
    "terraform.tfstate", "infra/prod.tfstate", "infra/terraform.tfstate.backup", "kubeconfig",
    "ops/kubeconfig.yaml", "ops/staging.kubeconfig", "secrets.yaml", "helm/secrets.yml",
])
def test_common_secret_file_names_are_refused(tmp_path: Path, path: str) -> None:
    root = tree(tmp_path, {"Dockerfile": "FROM scratch\n", path: "x", "app/main.py": "print()"})
    assert secret_files(bc.load(root, "Dockerfile")) == [path]


def test_registry_auth_json_is_refused_but_a_translation_file_is_not(tmp_path: Path) -> None:
    root = tree(tmp_path, {
        "Dockerfile": "FROM scratch\n",
        "containers/auth.json": '{"auths": {"ghcr.io": {"auth": "dXNlcjpwYXNz"}}}',
        "web/locales/en/auth.json": '{"login": "Log in", "logout": "Log out"}',
    })
    assert secret_files(bc.load(root, "Dockerfile")) == ["containers/auth.json"]


def test_ordinary_files_near_secret_names_are_not_refused(tmp_path: Path) -> None:
    root = tree(tmp_path, {
        "Dockerfile": "FROM scratch\n", "environment.py": "", "app/env.py": "", "envs/dev.yaml": "",
        ".env.example": "A=", ".env.sample": "A=", "app.env.example": "A=", "environment.yml": "",
        "secrets_test.py": "", "docs/secrets.md": "", "terraform/main.tf": "", "kube/deployment.yaml": "",
        "my.cnf.dist": "", "auth.py": "",
    })
    assert secret_files(bc.load(root, "Dockerfile")) == []


def test_refusal_names_files_and_the_fix_and_dockerignore_fixes_it(tmp_path: Path) -> None:
    root = tree(tmp_path / "app", {"Dockerfile": "FROM scratch\n", ".env": "OPENAI_API_KEY=sk-123",
                                   "keys/deploy.key": "k"})
    with pytest.raises(SecretsRefused) as err:
        refuse_secrets(bc.load(root, "Dockerfile"), "app/")
    assert err.value.exit_code == 2
    assert ".env" in err.value.message and "keys/deploy.key" in err.value.message
    assert "app/.dockerignore" in (err.value.hint or "")
    assert "sk-123" not in str(err.value)
    (root / ".dockerignore").write_text(".env*\nkeys/\n")
    refuse_secrets(bc.load(root, "Dockerfile"), "app/")


# --- image references -----------------------------------------------------------------------


def test_image_refs() -> None:
    ref = ImageRef.parse("127.0.0.1:5000/team/app:abc123")
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == ("127.0.0.1:5000", "team/app", "abc123", None)
    digest = "sha256:" + "0" * 64
    ref = ImageRef.parse(f"123456789012.dkr.ecr.us-east-1.amazonaws.com/app@{digest}")
    assert ref.reference == digest and ref.with_digest(digest).endswith(f"/app@{digest}")
    assert str(ImageRef.parse(f"localhost:5000/app:v1@{digest}")) == f"localhost:5000/app:v1@{digest}"
    for bad in ("app:latest", "127.0.0.1:5000/app", "127.0.0.1:5000/App:x", "127.0.0.1:5000/app@sha256:12"):
        with pytest.raises(UsageError):
            ImageRef.parse(bad)
    assert is_loopback("127.0.0.1:5000") and is_loopback("localhost:5000") and is_loopback("[::1]:5000")
    assert not is_loopback("registry.example.com:5000")


# --- stage selection for `deployctl run` ----------------------------------------------------

FIXTURE_YAML = Path(__file__).resolve().parents[1] / "fixtures" / "app" / "deploy.yaml"


def test_stage_selection() -> None:
    from deployctl.commands.run_cmd import select_stages
    from deployctl.config import load_env, read

    cfg = load_env(read(str(FIXTURE_YAML)), "dev")
    assert select_stages(cfg) == ("lint", "test", "build", "push", "deploy")
    assert select_stages(cfg, only="build, push") == ("build", "push")
    assert select_stages(cfg, from_stage="build") == ("build", "push", "deploy")
    assert select_stages(cfg, skip="lint,deploy") == ("test", "build", "push")
    assert select_stages(cfg, image="127.0.0.1:5000/a:b") == ("lint", "test", "deploy")
    for kwargs, message in (
        ({"only": "compile"}, "unknown stage 'compile'"),
        ({"from_stage": "build,push"}, "--from takes one stage"),
        ({"only": "build", "image": "127.0.0.1:5000/a:b"}, "cannot be combined"),
        ({"only": "lint", "skip": "lint"}, "no stages left"),
    ):
        with pytest.raises(UsageError, match=message):
            select_stages(cfg, **kwargs)  # type: ignore[arg-type]


# --- unreadable files -----------------------------------------------------------------------


def _as_unprivileged(fn: object) -> str:
    """Run fn() (returning a str) where file permissions apply, and return its result.

    As root, permissions do not stop reads, so fn runs in a forked child that has switched to
    the `nobody` user (everything it needs is already imported, so it reads nothing under
    root's home). Otherwise it runs here."""
    if os.geteuid() != 0:
        return fn()  # type: ignore[operator, no-any-return]
    import pwd

    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root and there is no `nobody` user to drop to")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            out = fn()  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            out, code = f"{type(exc).__name__}: {exc}", 1
        os.write(write_end, str(out).encode())
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        result = fh.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, result
    return result


@pytest.fixture
def shared_tmp() -> object:
    """A directory `nobody` can enter (pytest's tmp_path is private to its user)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="deployctl-ctx-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _failure(fn: object) -> str:
    def run() -> str:
        try:
            fn()  # type: ignore[operator]
        except StageFailed as exc:
            return str(exc)
        return "no error"
    return _as_unprivileged(run)


@pytest.mark.parametrize("unreadable", ["file", "directory"])
def test_unreadable_file_in_the_context_is_named_with_the_fix(shared_tmp: Path, unreadable: str) -> None:
    """A database directory in the context (gitignored, not dockerignored) owned by another
    user: a StageFailed naming it and .dockerignore, not a PermissionError."""
    root = tree(shared_tmp / "app", {"Dockerfile": "FROM scratch\n", "app/main.py": "print()",
                                     "pgdata/PG_VERSION": "16"})
    for d in (root, root / "app", root / "pgdata"):
        d.chmod(0o755)
    for f in (root / "Dockerfile", root / "app" / "main.py"):
        f.chmod(0o644)
    if unreadable == "file":
        (root / "pgdata" / "PG_VERSION").chmod(0o000)
        name = "pgdata/PG_VERSION"
        ctx = _as_unprivileged(lambda: ",".join(bc.load(root, "Dockerfile").files))
        assert "pgdata/PG_VERSION" in ctx.split(",")  # listed: it is there, just not readable
        for step in (lambda: bc.inputs_hash(bc.load(root, "Dockerfile"), target=None, build_args={},
                                             platform="linux/amd64"),
                     lambda: bc.make_tar(bc.load(root, "Dockerfile"))):
            message = _failure(step)
            assert message.startswith(f"cannot read {name} in the build context"), message
            assert "permission denied" in message and "`pgdata/`" in message and ".dockerignore" in message
    else:
        (root / "pgdata").chmod(0o700)  # what initdb makes; root-owned here, so nobody can't list it
        message = _failure(lambda: bc.load(root, "Dockerfile"))
        assert message.startswith("cannot read pgdata in the build context"), message
        assert "`pgdata/`" in message and ".dockerignore" in message

    # The fix the message names works.
    (root / ".dockerignore").write_text("pgdata/\n")
    (root / ".dockerignore").chmod(0o644)
    listed = _as_unprivileged(lambda: ",".join(bc.load(root, "Dockerfile").files))
    assert "pgdata" not in listed
    assert _failure(lambda: bc.make_tar(bc.load(root, "Dockerfile"))) == "no error"
