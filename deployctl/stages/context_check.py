"""Refuse to build when the context would ship secret-looking files.

Everything in the context is sent to the Docker daemon, and a `COPY . .` puts it in a layer
that anyone who can pull the image can read, forever, even if a later step deletes it. So a
`.env` or a private key in the context is refused before the build starts, naming the files
and the fix (.dockerignore).

Judgement calls, made to keep false alarms from training people to ignore the check:
- `.env.example`, `.env.sample`, `.env.template`, `.env.dist` are allowed: they are the
  committed, value-free templates of `.env`.
- `*.pem` and `*.crt` are refused only when they hold a private key: CA bundles and public
  certificates are ordinary image content.
- `id_rsa.pub` and other `*.pub` public keys are allowed.
- `auth.json` is refused only when it is a registry login (Docker's / podman's `"auths"`
  object): front-ends ship translation files called `auth.json` too.
- `*.env` (`app.env`, `prod.env`) is refused, but the templates above with another stem
  (`app.env.example`) are not matched at all, and `environment.py` is not a `.env` file.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from deployctl.errors import StageFailed
from deployctl.stages.context import BuildContext

# Matched against the file's base name.
SECRET_NAMES = (
    ".env", ".env.*", "*.key", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
    "credentials.json", "client_secret*.json", "service-account*.json",
    ".npmrc", ".pypirc", ".netrc", "_netrc", ".git-credentials", ".htpasswd",
    "*.p12", "*.pfx", "*.jks", "*.keystore", "*.tfvars", ".dockercfg",
    "*.env", ".envrc", ".pgpass", ".vault-token", ".s3cfg", ".my.cnf",
    "*.tfstate", "*.tfstate.backup", "kubeconfig", "kubeconfig.y*ml", "*.kubeconfig",
    "secrets.yaml", "secrets.yml",
)
# Files that are secret only when they contain a private key.
KEY_CONTAINERS = ("*.pem", "*.crt", "*.cer")
# Files that are secret only when they hold registry logins (`{"auths": {...}}`).
AUTH_CONTAINERS = ("auth.json",)
# Directories whose contents are credentials (matched against each path segment).
SECRET_DIRS = (".aws", ".ssh", ".gnupg", ".kube", ".docker")
ALLOWED_NAMES = (".env.example", ".env.sample", ".env.template", ".env.dist", "*.pub")
# A private key can sit anywhere in a bundle file, but not after megabytes of certificates.
_SNIFF_BYTES = 1024 * 1024


def secret_files(ctx: BuildContext) -> list[str]:
    """Paths in the context (after .dockerignore) that look like secrets."""
    found = []
    for path in ctx.files:
        parts = path.split("/")
        name = parts[-1]
        if any(fnmatch.fnmatchcase(name, p) for p in ALLOWED_NAMES):
            continue
        in_secret_dir = any(seg in SECRET_DIRS for seg in parts[:-1])
        named = any(fnmatch.fnmatchcase(name, p) for p in SECRET_NAMES)
        may_hold_key = any(fnmatch.fnmatchcase(name, p) for p in KEY_CONTAINERS)
        may_hold_auths = any(fnmatch.fnmatchcase(name, p) for p in AUTH_CONTAINERS)
        if (in_secret_dir or named or (may_hold_key and _holds(ctx.root / path, b"PRIVATE KEY-----"))
                or (may_hold_auths and _holds(ctx.root / path, b'"auths"'))):
            found.append(path)
    return found


def _holds(path: Path, marker: bytes) -> bool:
    try:
        with open(path, "rb") as fh:
            return marker in fh.read(_SNIFF_BYTES)
    except OSError:
        return False


def refuse_secrets(ctx: BuildContext, context_label: str) -> None:
    """Raise StageFailed naming every secret-looking file and how to keep it out."""
    found = secret_files(ctx)
    if not found:
        return
    shown = ", ".join(found[:10]) + (f" and {len(found) - 10} more" if len(found) > 10 else "")
    lines = sorted({_ignore_line(p) for p in found})
    raise StageFailed(
        f"refusing to build: the build context {context_label} would send secret-looking files to "
        f"the Docker daemon, and a COPY would bake them into the image for anyone who can pull it: "
        f"{shown}",
        hint=f"add them to {context_label.rstrip('/')}/.dockerignore (e.g. "
             + ", ".join(f"`{line}`" for line in lines[:5])
             + "), or move them out of the context; pass secrets at run time instead "
               "(services.*.secrets in deploy.yaml)",
    )


def _ignore_line(path: str) -> str:
    parts = path.split("/")
    for i, seg in enumerate(parts[:-1]):
        if seg in SECRET_DIRS:
            return "/".join(parts[: i + 1])
    name = parts[-1]
    if name == ".env" or name.startswith(".env."):
        return "**/.env*" if len(parts) > 1 else ".env*"
    return path
