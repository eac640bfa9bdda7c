"""Secrets never reach an image: against the real Docker engine, the real docker CLI and the
local registry.

- A context seeded with every kind of secret file (the ones a real leak shipped: `.git/config`
  with a CI extraheader, AWS `credentials`, OpenSSH `deploy_key`, `server.key.bak`, `ID_RSA`,
  `.ENV`, `env.local`, `gcp-sa-key.json`, plus credentials found only by content) and a secret
  build arg: the build is refused (exit 2) before the daemon sees anything. With the
  .dockerignore lines deployctl suggests, the pushed image, pulled back and `docker save`d,
  holds none of them, and its history holds no secret build arg.
- Secrets that only the image shows (an `ARG` default, a file a RUN step writes) stop the push.
- .dockerignore: deployctl's file list equals what the docker CLI sends for tricky patterns.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from deployctl.stages import context as build_context
from deployctl.stages import dockerignore
from tests.integration.conftest import FixtureApp, Registry, git

pytestmark = pytest.mark.docker

# Values assembled at run time so that no scanner flags this file, and no output may hold them.
GH_TOKEN = "ghs_" + "R7x2Kp9Qw4Lm8Zt1Vb6Nc3Hd5Jf0Gs2Ya9Ue"
BASIC = "eC1hY2Nlc3MtdG9rZW46" + "Z2hzX1I3eDJLcDlRdzRMbThadDFWYjZOYzNIZDVKZjBHczJZYTlVZQ=="
AWS_ID = "AKIA" + "QX7Z4LMN2PR8TV5W"
AWS_SECRET = "kP3vR8sT1uW6xY9zA2bC5dE" + "7fG0hJ4kL/mN+qS8t"  # 40 characters, as AWS issues them
NPM = "npm_" + "Zq8Xw2Lp5Rt9Vm3Kc7Nb1Hd4Jf6Gs0Ya2Ue8"
OPENSSH = ("-----BEGIN OPENSSH PRIVATE KEY-----\n"
           + "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n" * 5
           + "-----END OPENSSH PRIVATE KEY-----\n")
PEM = ("-----BEGIN RSA PRIVATE KEY-----\n"
       + "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n" * 5
       + "-----END RSA PRIVATE KEY-----\n")
GCP = json.dumps({"type": "service_account", "project_id": "demo", "private_key_id": "3f9a",
                  "private_key": PEM, "client_email": "ci@demo.iam.gserviceaccount.com"})

# path in the context → (content, a value that must never appear in the image or the output)
SECRET_FILES = {
    "credentials": (f"[default]\naws_access_key_id = {AWS_ID}\naws_secret_access_key = {AWS_SECRET}\n",
                    AWS_SECRET),
    "deploy_key": (OPENSSH, OPENSSH.splitlines()[1]),
    "server.key.bak": (PEM, PEM.splitlines()[1]),
    "ID_RSA": (PEM.replace("MIIEow", "MIIEpQ"), "MIIEpQ"),
    ".ENV": (f"GITHUB_TOKEN={GH_TOKEN}\n", GH_TOKEN),
    "env.local": ("DATABASE_URL=postgres://app:Wq9zLx4vPr@db/app\n", "Wq9zLx4vPr"),
    "gcp-sa-key.json": (GCP, "3f9a"),
    # Found by content alone: ordinary names.
    "config/settings.yaml": (f"github:\n  token: {GH_TOKEN}\n", GH_TOKEN),
    "notes/aws.txt": (f"id {AWS_ID}\nsecret {AWS_SECRET}\n", AWS_SECRET),
    "docs/key.txt": (OPENSSH.replace("b3Bl", "c3Bl"), "c3BlbnNz"),
}


def seed_secrets(app: FixtureApp) -> None:
    """The setup of the reported leak: `COPY . …`, no .dockerignore, a CI checkout's .git."""
    (app.path / ".dockerignore").unlink()
    # A RUN step that sees the build args, so that they are in the runtime image's history.
    app.edit("Dockerfile", lambda t: t.replace("USER 65534", "COPY . /ctx/\nARG GREETING\nARG NPM_TOKEN\n"
                                                             "RUN true\nUSER 65534"))
    app.edit("deploy.yaml", lambda t: t.replace("build_args: {GREETING: hi}",
                                                "build_args: {GREETING: hi, NPM_TOKEN: '${NPM_TOKEN}'}"))
    for path, (content, _) in SECRET_FILES.items():
        target = app.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    app.commit("secrets everywhere")
    # What actions/checkout leaves behind (persist-credentials), and a token in a remote URL.
    git(app.path, "config", "http.https://github.com/.extraheader", f"AUTHORIZATION: basic {BASIC}")
    git(app.path, "remote", "add", "origin", f"https://x-access-token:{GH_TOKEN}@github.com/o/r.git")


def secret_values() -> list[str]:
    return [BASIC, GH_TOKEN, AWS_SECRET, NPM] + [v for _, v in SECRET_FILES.values()]


def saved_image(docker_engine: Any, ref: str) -> tuple[dict[str, bytes], list[str]]:
    """Every file of every layer of `ref` (from `docker save`), and its history lines."""
    files: dict[str, bytes] = {}
    raw = b"".join(docker_engine.api.get_image(ref))
    with tarfile.open(fileobj=io.BytesIO(raw)) as outer:
        for member in outer.getmembers():
            if member.name.endswith("/layer.tar"):
                layer = outer.extractfile(member)
                assert layer is not None
                with tarfile.open(fileobj=io.BytesIO(layer.read())) as inner:
                    for entry in inner.getmembers():
                        if entry.isfile():
                            data = inner.extractfile(entry)
                            files[entry.name] = data.read() if data is not None else b""
    history = [str(h.get("CreatedBy") or "") for h in docker_engine.api.history(ref)]
    return files, history


def test_secret_context_is_refused_and_the_fixed_image_holds_no_secret(
        fixture_app: FixtureApp, registry: Registry, docker_engine: Any) -> None:
    app = fixture_app
    seed_secrets(app)

    refused = app.run("--only", "build,push", env={"NPM_TOKEN": NPM})
    assert refused.code == 2, refused.output
    assert "Traceback" not in refused.output
    out = refused.output
    # Each file, with the line that keeps it out; .git as a whole, and its config for what it holds.
    for path in [*SECRET_FILES, ".git/", ".git/config"]:
        assert re.search(rf"(?<![\w./-]){re.escape(path)} \([^)]*; exclude with `\S+`\)", out), (path, out)
    assert ".git/config (a git http.extraheader authorization" in out
    assert "NPM_TOKEN" in out and "services.*.secrets" in out and "classic" in out
    for value in secret_values():
        assert value not in out, value
    # Refused before the daemon: nothing built, nothing pushed.
    assert docker_engine.images.list(name=app.image) == []
    assert registry.tags(app.repository) == []

    # Apply exactly the lines deployctl named, drop the secret build arg.
    lines = sorted(set(re.findall(r"; exclude with `(\S+)`\)", out)))
    assert ".git" in lines
    (app.path / ".dockerignore").write_text("\n".join(lines) + "\n")
    app.edit("deploy.yaml", lambda t: t.replace(", NPM_TOKEN: '${NPM_TOKEN}'", ""))
    app.commit("keep secrets out")
    built = app.run("--only", "build,push", "--json", env={"NPM_TOKEN": NPM})
    assert built.code == 0, built.output
    digest = built.report()["outputs"]["digest"]

    # The image as anyone would get it: pulled back from the registry by digest.
    docker_engine.images.remove(app.image, force=True, noprune=True)
    pulled = f"{registry.host}/{app.repository}@{digest}"
    docker_engine.images.pull(pulled)
    try:
        files, history = saved_image(docker_engine, pulled)
    finally:
        docker_engine.images.remove(pulled, force=True, noprune=True)
    assert "ctx/VERSION" in files and "ctx/Dockerfile" in files  # the COPY did copy the context
    names = {name.lower() for name in files}
    for path in [*SECRET_FILES, ".git/config", ".git/HEAD"]:
        assert f"ctx/{path}".lower() not in names, path
    blob = b"\n".join(files.values()) + "\n".join(history).encode()
    for value in secret_values():
        assert value.encode() not in blob, value
    # The history does record build args (GREETING is there), just no secret one.
    assert any("GREETING=hi" in line for line in history), history
    assert not any("NPM_TOKEN=" in line for line in history)


@pytest.mark.parametrize(("dockerfile_change", "named"), [
    # An ARG default is in the history of every RUN that sees it. (A token-shaped default would
    # already stop the build: the Dockerfile is part of the context.)
    ("ARG DB_PASSWORD=hunter2-prod\nRUN echo $DB_PASSWORD > /dev/null\n", "ARG default DB_PASSWORD"),
    # A RUN step writes a credentials file: no context check can see it.
    ('RUN mkdir -p /out/www/.aws && echo "aws_secret_access_key = x" > /out/www/.aws/credentials\n',
     "/www/.aws/credentials"),
])
def test_secrets_only_the_image_shows_stop_the_push(fixture_app: FixtureApp, registry: Registry,
                                                    dockerfile_change: str, named: str) -> None:
    app = fixture_app
    app.edit("Dockerfile", lambda t: t.replace("COPY VERSION /out/www/version",
                                               "COPY VERSION /out/www/version\n"
                                               + dockerfile_change))
    if "ARG " in dockerfile_change:  # the ARG stage must end up in the runtime image
        app.edit("deploy.yaml", lambda t: t.replace("target: runtime", "target: build"))
    app.commit("a secret the context does not show")
    result = app.run("--only", "build,push")
    assert result.code == 2, result.output
    assert "refusing to push" in result.output and named in result.output, result.output
    assert "hunter2-prod" not in result.output
    assert registry.tags(app.repository) == []


def test_allowed_secret_file_ships(fixture_app: FixtureApp, registry: Registry) -> None:
    """The documented opt-out: image.allow_secret_files lets exactly the listed file through."""
    app = fixture_app
    app.edit("Dockerfile", lambda t: t.replace("USER 65534", "COPY certs/ /certs/\nUSER 65534"))
    (app.path / "certs").mkdir()
    (app.path / "certs" / "test-only.key").write_text(PEM)
    app.commit("a test key")
    refused = app.run("--only", "build,push")
    assert refused.code == 2 and "certs/test-only.key" in refused.output, refused.output
    app.edit("deploy.yaml", lambda t: t.replace("  max_size: 20MB",
                                                "  max_size: 20MB\n  allow_secret_files: [certs/test-only.key]"))
    app.commit("allow the test key")
    result = app.run("--only", "build,push")
    assert result.code == 0, result.output
    assert registry.tags(app.repository) == [app.sha12]


# --- .dockerignore against the real docker CLI ----------------------------------------------

TRICKY_TREE = [
    "a/b/c/x.txt", "a/b/y.txt", "a/z.txt", "docs/readme.md", "docs/deep/x.md", "docs/keep.md",
    "sp ace/f", "cache/sub/b.bin", "cache/x.bin", "node_modules/x/i.js", "README.md", "#hash",
    " lead", "c++", "ab", "axb", "ax/b", "app.LOG", "x.log", "Server.KEY", "[x]", "f$", "q/barfoo",
    "barfoo", "foo.txt", "src/main.py", "src/test/fixture.py", "build/out.o", "docker/Dockerfile.other",
]
TRICKY_IGNORES = [
    "# comment\n #hash\n**/c\ndocs\n!docs/keep.md\n*.log\n**/cache\n!cache/keep\n/node_modules/\n"
    "./a/../ax\nc++\n[!x]*.KEY\nf$\n  README.md  \n",
    "docs\n!**/*.md\n**foo\na/b\n!a/b/c/x.txt\n",
    "*\n!src\nsrc/test\n!Dockerfile\n",
    "**\n!**/*.py\n!src\n",
    "a**b\n\\[x]\nsp ace\n**/*.bin\n!cache/sub\nDockerfile\n.dockerignore\n",
    "\ufeffbuild/\n*/*.md\n!docs/deep/*.md\ndocker\n",
]


def cli_sends(context: Path) -> list[str]:
    """Files the docker CLI (legacy builder: it applies .dockerignore itself) puts in the
    context, read back from an image made by `COPY . /ctx`."""
    tag = f"dctl-ignore-{uuid.uuid4().hex[:10]}"
    docker = shutil.which("docker")
    assert docker, "the docker CLI is needed to compare with the engine's own .dockerignore handling"
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    # --no-cache: another case (on another worker) can build the same COPY layer and remove its
    # image while this build is using it from the cache; the removal below keeps parents.
    subprocess.run([docker, "build", "--no-cache", "-q", "-t", tag, str(context)], check=True, env=env,
                   capture_output=True, timeout=120)
    try:
        cid = subprocess.run([docker, "create", tag, "x"], check=True, capture_output=True,
                             text=True).stdout.strip()
        exported = subprocess.run([docker, "export", cid], check=True, capture_output=True).stdout
        subprocess.run([docker, "rm", cid], check=True, capture_output=True)
    finally:
        subprocess.run([docker, "rmi", "-f", "--no-prune", tag], capture_output=True)
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        return sorted(m.name[len("ctx/"):] for m in tar.getmembers()
                      if m.name.startswith("ctx/") and not m.isdir())


@pytest.mark.parametrize("ignore", TRICKY_IGNORES, ids=[f"case{i}" for i in range(len(TRICKY_IGNORES))])
def test_dockerignore_matches_the_docker_cli(tmp_path: Path, docker_engine: Any, ignore: str) -> None:
    root = tmp_path / "ctx"
    for path in TRICKY_TREE:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(path)
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /ctx\n")
    (root / ".dockerignore").write_text(ignore)
    ours = build_context.load(root, "Dockerfile").files
    # The daemon drops the Dockerfile and .dockerignore before COPY when they are listed.
    listed = dockerignore.Matcher(dockerignore.parse(ignore))
    sent_and_kept = sorted(f for f in ours if f not in (".dockerignore", "Dockerfile") or not listed.ignored(f))
    assert sent_and_kept == cli_sends(root)
