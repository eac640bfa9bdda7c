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
    from deployctl.app.run import select_stages
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


# --- issue 12: names, contents, .git, opt-out, build args, history ---------------------------

from deployctl.stages import dockerignore  # noqa: E402
from deployctl.stages import secret_rules as rules  # noqa: E402
from deployctl.stages.context_check import ignore_line  # noqa: E402
from deployctl.stages.image_check import history_findings, layer_findings  # noqa: E402

# Real-looking values, assembled so this file holds no literal secret.
OPENSSH_KEY = ("-----BEGIN OPENSSH PRIVATE KEY-----\n"
               + "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n" * 4
               + "-----END OPENSSH PRIVATE KEY-----\n")
RSA_KEY = OPENSSH_KEY.replace("OPENSSH", "RSA")
PGP_KEY = ("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n"
           + "lQOYBGXq3ZcBCADFk2pL8v9qQ7rS3tU4vW5xY6zA7bC8dD9eE0fF1gG2hH3iI4jJ\n" * 4
           + "-----END PGP PRIVATE KEY BLOCK-----\n")
AWS_ID = "AKIA" + "QX7Z4LMN2PR8TV5W"
AWS_SECRET = "kP3vR8sT1uW6xY9zA2bC5dE" + "7fG0hJ4kL/mN+qS8t"
TOKENS = {
    "GitHub": "ghp_" + "R7x2Kp9Qw4Lm8Zt1Vb6Nc3Hd5Jf0Gs2Ya9Ue",
    "GitLab": "glpat-" + "x9Kq2Lm7Zp4Rt8Vw3Nc1",
    "Slack": "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "Stripe": "sk_live_" + "51HqT2kLm9Zp4Rt8Vw3Nc1Xy",
    "npm": "npm_" + "Zq8Xw2Lp5Rt9Vm3Kc7Nb1Hd4Jf6Gs0Ya2Ue8",
}


@pytest.mark.parametrize("path", [
    # The files of the reported leak, and the variants the issue names.
    "credentials", "deploy_key", "server.key.bak", "ID_RSA", ".ENV", "env.local", "gcp-sa-key.json",
    "id_ed25519", "Id_Ecdsa_sk", "keys/Server.KEY", "tls.key.orig", "credentials.bak", "id_rsa~",
    ".env.production.local", "Prod.Env", "env.production", "ssh/host-key", "my-sa-key.json",
    "home/.AWS/config", ".ssh/known_hosts", ".netrc", ".git-credentials", "terraform.tfstate",
])
def test_secret_names_match_case_insensitively_with_variants(path: str) -> None:
    assert rules.name_reason(path) is not None


@pytest.mark.parametrize("path", [
    ".env.example", "config/.ENV.Sample", "deploy_key.pub", "ID_RSA.PUB", "server.key.pub",
    "alembic/env.py", "src/env.ts", "web/env.d.ts", "api_key.py", "keyboard.js", "monkey.key_map",
    "environment.yml", "credentials.py", "docs/secrets.md", "hotkey.json", ".npmrc", "auth.json",
])
def test_documented_look_alikes_stay_allowed(path: str) -> None:
    assert rules.name_reason(path) is None


@pytest.mark.parametrize(("content", "what"), [
    (OPENSSH_KEY, "OpenSSH"),
    (RSA_KEY, "PEM"),
    (PGP_KEY, "PGP"),
    (f"aws_access_key_id={AWS_ID}\naws_secret_access_key={AWS_SECRET}\n", "AWS"),
    ('{"type": "service_account", "private_key_id": "1", "private_key": "-----BEGIN PRIVATE KEY-----\\nMII"}',
     "GCP"),
    *[(f"x = '{token}'\n", name) for name, token in TOKENS.items()],
    ('[http "https://github.com/"]\n\textraheader = AUTHORIZATION: basic eC1hY2Nlc3M=\n', "extraheader"),
])
def test_secret_contents_are_recognised_in_any_file(tmp_path: Path, content: str, what: str) -> None:
    root = tree(tmp_path, {"Dockerfile": "FROM scratch\n", "src/notes.txt": content, "src/main.py": "x"})
    found = refuse_findings(root)
    assert [(f.path, f.by_content) for f in found] == [("src/notes.txt", True)]
    assert what in found[0].reason
    with pytest.raises(SecretsRefused) as err:
        refuse_secrets(bc.load(root, "Dockerfile"), "./")
    for value in (AWS_SECRET, *TOKENS.values(), "b3BlbnNzaC1rZXkt"):
        assert value not in str(err.value)


def refuse_findings(root: Path, allowed: tuple[str, ...] = ()) -> list:  # type: ignore[type-arg]
    from deployctl.stages.context_check import findings
    return findings(bc.load(root, "Dockerfile"), allowed)


@pytest.mark.parametrize("content", [
    "commit 3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39\n",  # git SHA
    "image@sha256:" + "a3f1" * 16 + "\n",  # digest
    "id: 123e4567-e89b-12d3-a456-426614174000\n",  # UUID
    "data: SGVsbG8gd29ybGQsIHRoaXMgaXMgbm90IGEgc2VjcmV0Lg==\n",  # base64 of text
    f"the AWS docs example key id {AWS_ID} alone\n",  # an id without its secret
    'if "-----BEGIN PRIVATE KEY-----" in pem:\n    return True\n',  # code naming the marker
    "token = get_token()\npassword = os.environ['DB_PASSWORD']\n",  # code, not values
    "url = https://github.com/o/r.git\nDATABASE_URL=postgres://app:dev@localhost/app\n",  # dev defaults
    "PK\x03\x04" + "\0" * 20 + "ghp_" + "R7x2Kp9Qw4Lm8Zt1Vb6Nc3Hd5Jf0Gs2Ya9Ue",  # a binary: not read
])
def test_look_alike_contents_are_not_refused(tmp_path: Path, content: str) -> None:
    root = tree(tmp_path, {"Dockerfile": "FROM scratch\n", "notes.txt": content})
    assert refuse_findings(root) == []


def test_git_is_refused_and_its_opt_out_does_not_cover_a_token_in_git_config(tmp_path: Path) -> None:
    root = tree(tmp_path, {"Dockerfile": "FROM scratch\n", ".git/HEAD": "ref: refs/heads/main\n",
                           ".git/config": "[core]\n\tbare = false\n"})
    assert [f.path for f in refuse_findings(root)] == [".git/"]
    # Allowed deliberately (a version tool reads it): fine while .git/config holds no credential…
    assert refuse_findings(root, (".git",)) == []
    # …but not with actions/checkout's persisted extraheader or a token in a remote URL.
    (root / ".git" / "config").write_text(
        '[remote "origin"]\n\turl = https://x-access-token:s3cr3tv4lu3@github.com/o/r.git\n')
    assert [(f.path, f.reason) for f in refuse_findings(root, (".git",))] == [
        (".git/config", "credentials in a git remote URL")]
    assert refuse_findings(root, (".git", ".git/config")) == []


def test_allow_secret_files_lets_exactly_the_listed_paths_through(tmp_path: Path) -> None:
    root = tree(tmp_path, {"Dockerfile": "FROM scratch\n", "certs/test-only.key": RSA_KEY,
                           "certs/prod.key": RSA_KEY, "fixtures/keys/a.pem": RSA_KEY})
    assert [f.path for f in refuse_findings(root, ("certs/test-only.key", "fixtures/keys"))] == [
        "certs/prod.key", "fixtures/keys/a.pem"]  # a.pem is a key by content: a directory does not cover it
    # A listed directory covers secret *names* below it; a key found by content needs its own entry.
    assert [f.path for f in refuse_findings(root, ("certs", "fixtures/keys/a.pem"))] == [
        "certs/prod.key", "certs/test-only.key"]
    assert refuse_findings(root, ("certs/prod.key", "certs/test-only.key", "fixtures/keys/a.pem")) == []


def test_allow_secret_files_is_validated() -> None:
    from pydantic import ValidationError

    from deployctl.config.model import ImageConfig
    assert ImageConfig(repository="x", allow_secret_files=["certs/test-only.key"]).allow_secret_files == [
        "certs/test-only.key"]
    for bad in ["", "../outside.key", "a/./b", "/"]:
        with pytest.raises(ValidationError):
            ImageConfig(repository="x", allow_secret_files=[bad])


@pytest.mark.parametrize("path", ["deploy_key", "a b/id_rsa ", " lead.key", "#x.key", "!x.key", "k[1].key",
                                  "dir/sub/.env", ".git/config", "x/.aws/credentials", "we*ird?.key"])
def test_suggested_dockerignore_line_excludes_the_file_and_only_it(tmp_path: Path, path: str) -> None:
    line = ignore_line(path)
    matcher = dockerignore.Matcher(dockerignore.parse("!keep\n" + line + "\n"))
    assert matcher.ignored(path), line
    assert not matcher.ignored("Dockerfile") and not matcher.ignored("app/main.py")


@pytest.mark.parametrize(("name", "value", "refused"), [
    ("NPM_TOKEN", "tok-8821x", True), ("GITHUB_TOKEN", "", False), ("dbPassword", "hunter2", True),
    ("API-KEY", "key-7731z", True), ("PGPASSWORD", "pw-5512q", True), ("SSH_PRIVATE_KEY", "key-2219w", True),
    ("MAX_TOKENS", "512", False), ("TOKENIZER", "bert", False), ("KMS_KEY_ID", "alias/app", False),
    ("PUBLIC_KEY", "ssh-ed25519 AAAA", False), ("GREETING", "hi", False), ("CACHE_BUST", "1", False),
    # By value, whatever the name.
    ("REGISTRY", "https://ci:" + "Wq9zLx4vPr@npm.example.com", True),
    ("EXTRA", TOKENS["GitHub"], True), ("X", TOKENS["npm"], True), ("VERSION", "1.2.3", False),
])
def test_secret_build_args_by_name_or_value(name: str, value: str, refused: bool) -> None:
    from deployctl.stages.context_check import refuse_secret_build_args
    if not refused:
        refuse_secret_build_args({name: value})
        return
    with pytest.raises(SecretsRefused) as err:
        refuse_secret_build_args({name: value})
    assert err.value.exit_code == 2
    assert name in err.value.message
    assert value not in str(err.value) + (err.value.hint or "")
    assert "services.*.secrets" in (err.value.hint or "") and "classic builder" in (err.value.hint or "")


def test_history_and_layers_are_checked_without_echoing_values() -> None:
    history = [
        "/bin/sh -c #(nop)  ARG GREETING=hello",
        "|2 GREETING=hi NPM_TOKEN=abc123def /bin/sh -c npm ci",
        "/bin/sh -c #(nop)  ENV DB_PASSWORD=hunter2 PATH=/bin",
        f"/bin/sh -c curl -H 'Authorization: token {TOKENS['GitHub']}' https://api.github.com",
    ]
    found = history_findings(history)
    assert [f.split(" (")[0] for f in found] == [
        "history step 2, build arg NPM_TOKEN", "history step 3, ENV DB_PASSWORD",
        "history step 4, a command holding a GitHub token"]
    assert not any(v in " ".join(found) for v in ("abc123def", "hunter2", TOKENS["GitHub"]))
    layers = [(1, "bin/busybox", b""), (2, "app/.env", b""), (2, "app/main.py", b""),
              (3, "app/.wh..env", b""), (3, "root/.npmrc", b"//r/:_authToken=x\n"),
              (3, "etc/ssl/certs/ca.pem", b"-----BEGIN CERTIFICATE-----"), (4, "app/certs/test-only.key", b"")]
    assert layer_findings(layers, ["certs/test-only.key"]) == [
        "layer 2, /app/.env (a secret file name)", "layer 3, /root/.npmrc (a registry auth token)"]


def test_content_scan_cost_is_bounded(tmp_path: Path) -> None:
    """A big binary is not read past its first block; a big text file only up to SCAN_BYTES."""
    root = tree(tmp_path, {"Dockerfile": "FROM scratch\n"})
    (root / "model.bin").write_bytes(b"\0" * 1024 + b"x" * (rules.SCAN_BYTES * 3))
    (root / "big.txt").write_bytes(b"a" * (rules.SCAN_BYTES + 10) + TOKENS["GitHub"].encode())
    assert refuse_findings(root) == []  # past the cap: documented limit
    (root / "big.txt").write_bytes(b"a\n" * 1000 + TOKENS["GitHub"].encode())
    assert [f.path for f in refuse_findings(root)] == ["big.txt"]
