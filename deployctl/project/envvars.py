"""The environment variables the app reads: from .env.example/.env.sample and from
os.getenv/os.environ in the code. Secret-looking names are secrets; the others are plain
env with their sample values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from deployctl.project.files import is_test_path, read, rel, walk
from deployctl.redact import looks_like_secret, secret_variable

SAMPLES = (".env.example", ".env.sample", ".env.template", ".env.dist", "env.example", "example.env")
# Connection strings and DSNs carry credentials whatever the last word of their name says.
_CONNECTION = re.compile(r"DATABASE_URL|REDIS_URL|MONGO(DB)?_URI|CONNECTION_STRING|DSN|WEBHOOK|CREDENTIAL|"
                         r"PRIVATE", re.I)
_CODE = re.compile(r"""os\.(?:getenv|environ\.get|environ\.setdefault)\(\s*["']([A-Z_][A-Z0-9_]*)["']"""
                   r"""(?:\s*,\s*(?:["']([^"'\n]*)["']|(\d[\d.]*)))?"""
                   r"""|os\.environ\[\s*["']([A-Z_][A-Z0-9_]*)["']\s*\]""")
# Set by the platform or the image, not by deploy.yaml.
IGNORED = frozenset({"PATH", "HOME", "HOSTNAME", "PYTHONPATH", "PWD", "USER", "TERM", "LANG",
                     "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV", "CI", "GITHUB_ACTIONS"})
_PLACEHOLDER = re.compile(r"^(|changeme|change-me|your[-_].*|xxx+|<.*>|\.\.\.|todo|replace.*)$", re.I)


@dataclass(frozen=True)
class EnvVars:
    env: dict[str, str]          # NAME → sample value
    secrets: tuple[str, ...]     # NAMEs whose values must stay out of deploy.yaml
    sample_file: str | None      # the .env.example-like file read, relative to the root
    no_sample: tuple[str, ...]   # plain names read in code with no default or sample value


# A word of the name that says "secret" (AWS_ACCESS_KEY_ID, OPENAI_API_KEY_2, JWT_SECRET) —
# unless another word says it is a setting about one (MAX_TOKENS is plural anyway;
# AUTH_TOKEN_TTL, PASSWORD_MIN_LENGTH, API_KEY_HEADER, NEXT_PUBLIC_API_KEY are settings).
_SECRET_WORDS = frozenset({"KEY", "KEYS", "APIKEY", "SECRET", "SECRETS", "TOKEN", "PASSWORD", "PASSWD", "PASS",
                           "PWD", "PASSPHRASE"})
_SETTING_WORDS = frozenset({"MAX", "MIN", "LIMIT", "LIMITS", "TTL", "COUNT", "SIZE", "LENGTH", "LEN", "TIMEOUT",
                            "EXPIRY", "EXPIRES", "EXPIRATION", "SECONDS", "MINUTES", "HOURS", "DAYS", "HEADER",
                            "PREFIX", "PUBLIC", "ENABLED", "DISABLED", "USE", "REQUIRED"})
_NUMBER_OR_SWITCH = re.compile(r"-?\d+(?:\.\d+)?|true|false|yes|no|on|off", re.I)


def is_secret(name: str, sample: str = "") -> bool:
    """A variable init lists under `secrets:` (and never writes a value for). Errs toward secret
    (a secret in Secrets Manager costs a little; one in plain env leaks): a secret word in the
    name and no setting word, a name validate refuses in plain env (deployctl.redact.
    secret_variable), `…_AUTH`, a connection string, or a sample value with a credential shape.
    A numeric or on/off sample is a setting."""
    if looks_like_secret(sample) or _CONNECTION.search(name):
        return True
    if sample and _NUMBER_OR_SWITCH.fullmatch(sample):
        return False
    words = [w for w in re.split(r"[_\-.]+", name.upper()) if w]
    by_words = bool(_SECRET_WORDS & set(words)) and not (_SETTING_WORDS & set(words))
    return by_words or secret_variable(name) or (bool(words) and words[-1] == "AUTH")


def _sample(root: Path, app_dir: str) -> tuple[str | None, dict[str, str]]:
    for d in dict.fromkeys((app_dir, ".")):
        for name in SAMPLES:
            p = root / d / name
            if p.is_file():
                values: dict[str, str] = {}
                for line in read(p).splitlines():
                    line = line.strip()
                    if not line or line.startswith("#") or "=" not in line:
                        continue
                    key, _, value = line.removeprefix("export ").partition("=")
                    key = key.strip()
                    value = value.split(" #")[0].strip().strip("\"'")
                    if re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
                        values[key] = value
                return rel(root, p), values
    return None, {}


def detect(root: Path, app_dir: str, port: int | None = None) -> EnvVars:
    sample_file, sample = _sample(root, app_dir)
    defaults: dict[str, str] = {}
    names: list[str] = list(sample)
    for path in walk(root / app_dir):
        if is_test_path(rel(root, path)):
            continue
        for m in _CODE.finditer(read(path)):
            name = m.group(1) or m.group(4)
            names.append(name)
            default = m.group(2) if m.group(2) is not None else m.group(3)
            if default is not None and name not in defaults:
                defaults[name] = default
    env: dict[str, str] = {}
    secrets: list[str] = []
    no_sample: list[str] = []
    for name in dict.fromkeys(names):
        if name in IGNORED:
            continue
        if is_secret(name, sample.get(name) or defaults.get(name, "")):
            secrets.append(name)
            continue
        if name == "PORT" and port:
            env[name] = str(port)
            continue
        value = sample.get(name)
        if value is None or _PLACEHOLDER.match(value):
            value = defaults.get(name, value)
        if value:
            env[name] = value
        else:
            no_sample.append(name)
    return EnvVars(env=env, secrets=tuple(secrets), sample_file=sample_file, no_sample=tuple(no_sample))
