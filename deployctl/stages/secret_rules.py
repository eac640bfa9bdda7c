"""What a secret looks like in a build: file names, file contents and build args. Pure.

Used on the build context before anything is sent to the daemon (context_check.py) and on the
built image's layers and history before push (image_check.py).

Judgement calls, made to keep false alarms from training people to ignore the check:
- Names match case-insensitively, and a backup of a secret is a secret (`id_rsa.bak`,
  `credentials~`, `server.key.orig`).
- Templates stay allowed: `.env.example`, `.env.sample`, `.env.template`, `.env.dist`
  (any stem), and public keys (`*.pub`).
- `env.<ext>` is refused (`env.local`, `env.production`) except source code: `alembic/env.py`,
  `src/env.ts` are programs, not values.
- `*.pem`, `*.crt`, `*.cer`, `.npmrc`, `.pypirc`, `.yarnrc.yml`, `pip.conf` and `auth.json` are
  ordinary files unless their content holds a private key, a token or registry logins.
- Content is recognised by shapes that only secrets have: a private key block with a body,
  an AWS access key id *together with* a secret access key, provider tokens with their fixed
  prefixes (GitHub, GitLab, Slack, Stripe live keys, npm, PyPI, Hugging Face, OpenAI/Anthropic,
  Google API keys), a GCP service-account key, git's `http.extraheader` authorization and
  credentials in a git remote URL. A key id or a digest alone is not a secret.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

from deployctl import redact

# --- names ----------------------------------------------------------------------------------

# Matched against the lower-cased base name (after removing backup suffixes, see _BACKUP).
SECRET_NAMES = (
    ".env", ".env.*", "*.env", ".envrc", "env.*",
    "*.key", "*.key.*", "*_key", "*-key",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "identity",
    "credentials", "credentials.json", "credentials.csv", "accesskeys.csv", "*_accesskeys.csv",
    "*_credentials.csv", "client_secret*.json", "service-account*.json", "service_account*.json",
    "*sa*key*.json", "*serviceaccount*.json",
    ".netrc", "_netrc", ".git-credentials", ".htpasswd", ".pgpass", ".vault-token", ".s3cfg",
    ".my.cnf", ".dockercfg", ".boto", ".terraformrc", "terraform.rc", ".databrickscfg",
    "*.p12", "*.pfx", "*.jks", "*.keystore", "*.ppk", "*.gpg", "*.asc.key",
    "*.tfvars", "*.tfvars.json", "*.tfstate", "*.tfstate.backup",
    "kubeconfig", "kubeconfig.*", "*.kubeconfig",
    "secrets.yaml", "secrets.yml", "secrets.json", "secret.yaml", "secret.yml",
    "master.key", "htpasswd",
)
# A backup or editor copy of a secret is the same secret.
_BACKUP = re.compile(r"(?:\.(?:bak|backup|old|orig|save|saved|copy|tmp|swp|swo|prev|[0-9]+)|~)+$")
# Templates and public halves: value-free by convention.
_TEMPLATE = re.compile(r"\.(?:example|sample|template|tmpl|dist|defaults?)$")
ALLOWED_NAMES = ("*.pub", "*.pub.*", "*.example", "*.sample", "*.template", "*.dist")
# `env.<ext>` that is a program: a module named env, not a dotenv file.
_CODE_EXTENSIONS = frozenset({
    "py", "pyi", "js", "mjs", "cjs", "jsx", "ts", "mts", "cts", "tsx", "d.ts", "go", "rb", "rs",
    "java", "kt", "php", "ex", "exs", "swift", "scala", "cs", "c", "h", "cpp", "hpp", "vue",
    "svelte", "dart", "lua", "pl", "md", "rst", "txt",
})
# Files that are secret only when their content says so (see SHAPES and _CONTAINER_SHAPES).
CONTAINER_NAMES = ("*.pem", "*.crt", "*.cer", ".npmrc", ".pypirc", ".yarnrc.yml", ".yarnrc",
                   "pip.conf", "pip.ini", "auth.json", "config.json")
# Directories whose files are credentials, matched against each lower-cased path segment.
SECRET_DIRS = (".aws", ".ssh", ".gnupg", ".kube", ".docker", ".azure", ".gcloud")
GIT_DIR = ".git"


def _is_code(name: str) -> bool:
    ext = name.split(".", 1)[1] if "." in name else ""
    return ext in _CODE_EXTENSIONS


def name_reason(path: str) -> str | None:
    """Why the path's name alone says "secret", or None. `path` is "/"-separated."""
    parts = path.lower().split("/")
    for seg in parts[:-1]:
        if seg == GIT_DIR:
            return "git's internals, with remotes, tokens and every committed file"
        if seg in SECRET_DIRS:
            return f"a file in a {seg} credentials directory"
    name = parts[-1]
    if _allowed(name):
        return None
    base = _BACKUP.sub("", name) or name
    for candidate in {name, base}:
        if candidate.startswith("env.") and _is_code(candidate):
            continue
        if candidate.endswith(".pub") or _allowed(candidate):
            continue
        if any(fnmatch.fnmatchcase(candidate, p) for p in SECRET_NAMES):
            return "a secret file name" + (", a backup copy" if candidate != name else "")
    return None


def _allowed(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in ALLOWED_NAMES) or _TEMPLATE.search(name) is not None


def is_container(path: str) -> bool:
    name = path.lower().rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(name, p) for p in CONTAINER_NAMES)


# --- contents -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    name: str  # what people call it: "an OpenSSH private key"
    pattern: re.Pattern[bytes]
    needles: tuple[bytes, ...]  # literals one of which the pattern needs: found with bytes.find


def _b(pattern: str, flags: int = 0) -> re.Pattern[bytes]:
    return re.compile(pattern.encode(), flags)


# Private key blocks need a body (64+ base64 characters after the BEGIN line): code that merely
# mentions the marker (`if "-----BEGIN PRIVATE KEY-----" in pem:`) is no key.
_KEY_BODY = rb"[ \t]*\r?\n(?:[A-Za-z0-9+/=:, \t-]*\r?\n)*?[A-Za-z0-9+/=\r\n]{64}"
_KEY = (b"PRIVATE KEY-----",)
SHAPES: tuple[Shape, ...] = (
    Shape("an OpenSSH private key", re.compile(rb"-----BEGIN OPENSSH PRIVATE KEY-----" + _KEY_BODY), _KEY),
    Shape("a PGP private key block", re.compile(rb"-----BEGIN PGP PRIVATE KEY BLOCK-----" + _KEY_BODY),
          (b"PGP PRIVATE KEY BLOCK",)),
    Shape("a PEM private key", re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----" + _KEY_BODY), _KEY),
    Shape("a git http.extraheader authorization",
          _b(r"(?im)^[ \t]*extraheader[ \t]*=[ \t]*\"?authorization:"), (b"extraheader", b"EXTRAHEADER")),
    Shape("a PuTTY private key", _b(r"PuTTY-User-Key-File-[0-9]+: "), (b"PuTTY-User-Key-File-",)),
    Shape("a GCP service-account key",
          _b(r'"type"\s*:\s*"service_account"[\s\S]{0,4000}?"private_key"\s*:\s*"-----BEGIN'),
          (b"service_account",)),
    Shape("a GitHub token", _b(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,})"),
          (b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"github_pat_")),
    Shape("a GitLab token", _b(r"\bgl(?:pat|dt|rt|ptt|cbt|oas)-[A-Za-z0-9_-]{20,}"),
          (b"glpat-", b"gldt-", b"glrt-", b"glptt-", b"glcbt-", b"gloas-")),
    Shape("a Slack token", _b(r"\bxox[abposre]-[0-9]+-[A-Za-z0-9-]{10,}"), (b"xox",)),
    Shape("a Slack webhook URL",
          _b(r"hooks\.slack\.com/(?:services|workflows)/T[A-Z0-9]+/[A-Z0-9]+/[A-Za-z0-9]{16,}"),
          (b"hooks.slack.com/",)),
    Shape("a Stripe live key", _b(r"\b(?:sk|rk)_live_[A-Za-z0-9]{20,}"), (b"k_live_",)),
    Shape("an npm token", _b(r"\bnpm_[A-Za-z0-9]{36}\b"), (b"npm_",)),
    Shape("a PyPI token", _b(r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"), (b"pypi-AgEIcHlwaS5vcmc",)),
    Shape("a Hugging Face token", _b(r"\bhf_[A-Za-z0-9]{34,}"), (b"hf_",)),
    Shape("an OpenAI/Anthropic API key", _b(r"\bsk-(?:proj-|ant-(?:api|admin)[0-9]{2}-)?[A-Za-z0-9_-]{32,}"),
          (b"sk-",)),
    Shape("a Google API key", _b(r"\bAIza[0-9A-Za-z_-]{35}\b"), (b"AIza",)),
)
# An AWS access key id alone is an identifier; with a secret access key in the same file it is a
# credential. The secret is 40 base64 characters with both letter cases (a hex SHA-1 has one).
_AWS_ID = _b(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
_AWS_SECRET = _b(r"(?<![A-Za-z0-9/+])(?=[A-Za-z0-9/+]{0,39}[a-z])(?=[A-Za-z0-9/+]{0,39}[A-Z])"
                 r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
# Only inside git's own files, where a remote URL with a password is never a dev-only default.
_URL_CREDENTIALS = _b(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:[^\s/@]+@")
# Content rules for the files that are secrets only by content (see CONTAINER_NAMES).
_CONTAINER_SHAPES: tuple[Shape, ...] = (
    Shape("a private key", _b(r"PRIVATE KEY-----"), ()),
    Shape("a registry auth token",
          _b(r"(?im)(?:_authtoken|_auth|_password|npmauthtoken|npmauthident)[ \t\"']*[=:][ \t\"']*[^\s\"'$]"), ()),
    Shape("a password", _b(r"(?im)^[ \t]*password[ \t]*[=:][ \t]*[^\s$]"), ()),
    Shape("registry logins", _b(r'"auths"\s*:\s*\{\s*"[^"]+"\s*:\s*\{[^}]*"auth"\s*:\s*"[^"]'), ()),
)

# Text files are scanned up to this many bytes; a NUL byte in the first BINARY_SNIFF bytes
# marks a binary (model weights, images, archives), which is not scanned at all.
SCAN_BYTES = 1024 * 1024
BINARY_SNIFF = 8192
def is_binary(head: bytes) -> bool:
    return b"\0" in head[:BINARY_SNIFF]


def content_reason(data: bytes, path: str = "", *, deep: bool = False) -> str | None:
    """What secret the bytes hold ("an OpenSSH private key"), or None. Never the value.
    `deep` also tries the redactor's token shapes: for short texts (a build-arg value, a history
    line); over whole files they would cost about 5 s per 40 MB of source code."""
    if is_binary(data):
        return None
    if path and is_container(path):
        for shape in _CONTAINER_SHAPES:
            if shape.pattern.search(data):
                return shape.name
    # Each shape is tried only when one of its literals is in the data (bytes.find runs at memory
    # speed; a regex, or one alternation of all literals, at about 12 MB/s).
    for shape in SHAPES:
        if any(n in data for n in shape.needles) and shape.pattern.search(data):
            return shape.name
    if (b"AKIA" in data or b"ASIA" in data) and _AWS_ID.search(data) and _AWS_SECRET.search(data):
        return "an AWS access key id with its secret access key"
    if _in_git(path) and _URL_CREDENTIALS.search(data):
        return "credentials in a git remote URL"
    if not deep:
        return None
    text = data.decode("utf-8", "replace")
    if any(p.search(text) for p in _REDACTOR_TOKENS):
        return "a token, a shape the log redactor masks"
    return None


def _in_git(path: str) -> bool:
    parts = path.lower().split("/")
    return GIT_DIR in parts[:-1] or parts[-1] == ".git-credentials"


# The redactor's provider-token shapes, as a net for shapes added there after this list was written.
_REDACTOR_TOKENS = redact.token_patterns()


# --- build args -----------------------------------------------------------------------------

# Whole words of an arg name (NPM_TOKEN, dbPassword, api-key) that say "the value is a secret".
_SECRET_WORDS = frozenset({
    "token", "tokens", "secret", "secrets", "password", "passwords", "passwd", "passphrase", "pass",
    "pwd", "key", "keys", "apikey", "privatekey", "accesskey", "credential", "credentials", "creds",
    "authtoken", "pat",
})
# Run-together names end with one of these (PGPASSWORD, NPMTOKEN, MYSQLPASSWD).
_SECRET_ENDINGS = ("password", "passwd", "token", "secret", "credentials", "apikey")
# A key word followed by one of these names a key rather than holding one (KMS_KEY_ID, KEY_ARN).
_NAMING_WORDS = frozenset({"id", "ids", "arn", "name", "names", "alias", "type", "size", "length",
                           "alg", "algorithm", "region", "version", "url", "file", "path"})
_LITERALS = frozenset({"", "true", "false", "yes", "no", "on", "off", "0", "1", "none", "null"})


def _words(name: str) -> list[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def secret_arg_name(name: str) -> str | None:
    """The word of a build-arg name that says it holds a secret, or None."""
    words = _words(name)
    for i, word in enumerate(words):
        if word not in _SECRET_WORDS and not word.endswith(_SECRET_ENDINGS):
            continue
        after = words[i + 1] if i + 1 < len(words) else ""
        before = words[i - 1] if i else ""
        if after in _NAMING_WORDS or before in ("public", "pub"):
            continue
        return word
    return None


def build_arg_reason(name: str, value: str) -> str | None:
    """Why a build arg must not be passed (its name or its value looks secret), or None.
    The value is inspected, never returned."""
    word = secret_arg_name(name)
    stripped = value.strip()
    if word and not (stripped.lower() in _LITERALS
                     or ("token" in word and stripped.isdigit())):
        return f"its name says it holds a secret ({word!r})"
    if content_reason(value.encode(), deep=True) or redact.Redactor().redact(value) != value:
        return "its value looks like a credential"
    return None


def secret_args(build_args: dict[str, str]) -> list[tuple[str, str]]:
    """(name, reason) for each build arg that looks secret, by name."""
    found = []
    for name in sorted(build_args):
        reason = build_arg_reason(name, build_args[name])
        if reason:
            found.append((name, reason))
    return found


def matching(paths: Iterable[str], allowed: Iterable[str]) -> set[str]:
    """The paths an allow-list entry covers: the entry itself or anything below it."""
    entries = [a.strip("/") for a in allowed]
    return {p for p in paths for a in entries if p == a or p.startswith(a + "/")}
