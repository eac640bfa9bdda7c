"""Keep secrets out of everything deployctl prints, stores or uploads.

Two kinds of protection, both replacing with `***`:
- *known* values registered with `Redactor.add()` (secrets read from deploy.yaml's secret
  sources, registry passwords, tokens from the environment): exact, no false positives;
- *shapes* that look like credentials (AWS key ids, `password=…`, bearer tokens, `sk-…` API
  keys, PEM private keys…): a net for secrets nobody told us about. Shapes err on the side of
  hiding a little too much; a log line missing a harmless value is cheaper than a leaked key.

Output is line-oriented, but a PEM private key spans many lines, so per-stream redaction goes
through `Redactor.stream()`, which remembers whether it is inside a key block.
"""

from __future__ import annotations

import base64
import re
import threading
import urllib.parse
from collections.abc import Callable

MASK = "***"

# Shorter registered values are ignored: masking every "abc" in the output would shred logs
# without protecting anything, since a 3-character value is not a meaningful secret.
MIN_SECRET_LENGTH = 4

# Key names that say "the value is a secret". A name matches on whole words of the name, as
# people write them (DB_PASSWORD, db.password, dbPassword, x-api-key, PGPASSWORD), never on a
# substring of another word: a service called `tokenizer` or a `passenger` count is not a secret.
# A word ends where the next character is not a letter, or at a camelCase hump.
_WORD_END = r"(?:(?![A-Za-z])|(?<=[a-z])(?=[A-Z]))"
# Long words may end a run-together name (PGPASSWORD, MYSQLPASSWORD, githubtoken).
_LONG_WORDS = (
    r"(?i:passwords?|passwd|passphrase|tokens?|secrets?|credentials?|(?:api|access|private)[_-]?keys?)"
)
# `pass` and `pwd` only after a separator or a camel hump (DB_PASS, REDIS_PASS, MYSQL_PWD,
# dbPass): bare, they are the test runner's `PASS: test_x` and the shell's `PWD=/home/me`,
# and run-together they are `bypass` or `compass`.
_SHORT_WORDS = r"(?:(?<=[A-Za-z0-9][_.-])|(?<=[a-z])(?=[A-Z]))(?i:pass|pwd)"
_SECRET_WORD = rf"(?:{_LONG_WORDS}|{_SHORT_WORDS}){_WORD_END}"
# A whole key (`DB_PASSWORD`, `"api_key"`) containing a secret word; it starts at a boundary, so
# the `:secret:` inside an ARN (which names a secret rather than being one) is no key.
_SECRET_KEY = rf"(?<![A-Za-z0-9_.:/-])(?=[A-Za-z0-9_.-]*?{_SECRET_WORD})[A-Za-z0-9_.-]+"
_ASSIGN = rf"({_SECRET_KEY}[\"']?\s*[=:]\s*)"

_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_LITERALS = frozenset({"true", "false", "null", "none", "yes", "no"})


# A Secrets Manager IAM action (`secretsmanager:GetSecretValue`): the only AWS service prefix
# that contains one of the secret words, so the only permission name that looks like `secret…:x`.
_IAM_ACTION = re.compile(r"secretsmanager:[A-Z][A-Za-z0-9]*\*?")


def _keeps(head: str, value: str) -> bool:
    """True when the value of a secret-named key is clearly a setting, not a secret: a
    boolean/null literal, or a number given to a *token* name (LLM services log
    `max_tokens: 512`, `prompt_tokens=20`; a numeric password, on the other hand, is still a
    password)."""
    if value.lower() in _LITERALS:
        return True
    if _NUMBER.fullmatch(value) and "token" in head.lower():
        return True
    # `secretsmanager:GetSecretValue` names a permission, it is not one
    return bool(_IAM_ACTION.fullmatch(head + value))


def _mask_assignment(match: re.Match[str]) -> str:
    """Mask `name=value` unless the value is clearly a setting (see _keeps)."""
    head, value = match.group(1), match.group(2)
    return match.group(0) if _keeps(head, value) else head + MASK


_LIST_ITEM = re.compile(r"""(\s*)(?:(["'])(.*?)\2|([^,]*?))(\s*)(?=,|$)""")


def _mask_list(match: re.Match[str]) -> str:
    """`passwords: ["a1b2", "c3d4"]` → `passwords: ["***", "***"]`: each item masked, quotes
    and separators kept, ARNs and settings (see _keeps) left readable."""
    head, items = match.group(1), match.group(2)

    def item(m: re.Match[str]) -> str:
        lead, quote, quoted, bare, trail = m.groups()
        value = quoted if quote else bare
        if not value or value == MASK or value.startswith("arn:") or _keeps(head, value):
            return m.group(0)
        return f"{lead}{quote or ''}{MASK}{quote or ''}{trail}"

    return f"{head}[{_LIST_ITEM.sub(item, items)}]"


# (pattern, replacement). Replacements keep the name and drop the value, so a log still says
# *which* thing was set, e.g. `password=***`.
_SHAPES: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # PEM private key on a single line (e.g. a JSON-escaped key in one string).
    (
        re.compile(
            r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----",
            re.DOTALL,
        ),
        MASK,
    ),
    # AWS access key ids: long-term (AKIA) and temporary STS (ASIA) plus the other IAM prefixes.
    (re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}\b"), MASK),
    # aws_secret_access_key = ..., AWS_SECRET_ACCESS_KEY: ..., "SecretAccessKey": "..."
    (
        re.compile(r"(?i)(aws_?secret_?access_?key|secretaccesskey)([\"']?\s*[=:]\s*[\"']?)[^\s\"',;]+"),
        rf"\1\2{MASK}",
    ),
    # HTTP auth headers, any scheme (Bearer, Basic, token, AWS4-HMAC-SHA256 …).
    (re.compile(r"(?i)\b(authorization\s*[:=]\s*[\"']?)(\S+\s+)?[^\s\"',]+"), rf"\1\2{MASK}"),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\1{MASK}"),
    # Provider API keys with a recognisable prefix: sk-… / sk-proj-… / sk-ant-…, GitHub, Slack,
    # Hugging Face, Google.
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), MASK),
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"), MASK),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), MASK),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}"), MASK),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), MASK),
    # Credentials inside URLs: scheme://user:password@host
    (re.compile(r"([a-z][a-z0-9+.-]*://[^\s:/@]+:)[^\s@/]+(@)"), rf"\1{MASK}\2"),
    # user:password given to curl/wget-style flags: `-u ci:S3cret`, `--user 'ci:S3cret'`. A
    # numeric pair is `docker run -u 1000:1000`, a uid and gid.
    (
        re.compile(r"""((?<![\w-])(?:-u\s*|--user[= ]\s*)(["'])[^\s:"']+:)(?!\*\*\*)(?![0-9]+\2)[^"'\n]+(?=\2)"""),
        rf"\1{MASK}",
    ),
    (
        re.compile(r"""((?<![\w-])(?:-u\s*|--user[= ]\s*)[^\s:"']+:)(?!\*\*\*)(?![0-9]+(?:\s|$))[^\s"']+"""),
        rf"\1{MASK}",
    ),
    # name=value / name: value for password, token, secret, api_key, … (env dumps, CLI flags,
    # YAML, JSON). Only `=`/`:` count as assignment: "reading secrets from Secrets Manager" must
    # stay readable. ARN values are left alone: they name a secret. First a flow list of values
    # (`passwords: ["a1", "b2"]`), item by item.
    (re.compile(rf"{_ASSIGN}\[([^\]\n]*)\]"), _mask_list),
    # Quoted values are masked up to the closing quote, spaces and all.
    (
        re.compile(rf"{_ASSIGN}([\"'])(?!\*\*\*)(?!arn:)[^\"'\n]+\2"),
        rf"\1\2{MASK}\2",
    ),
    # The same, unquoted: the value ends at whitespace or a separator (see _mask_assignment
    # for the values let through). A whole `[…]` list was handled above.
    (
        re.compile(rf"{_ASSIGN}(?!\*\*\*|arn:|\[[^\]\n]*\])([^\s\"',;&]+)"),
        _mask_assignment,
    ),
    # --password VALUE / --token VALUE flags (docker login, CLIs).
    (re.compile(r"(?i)(--(?:password|passwd|pass|token|secret)[= ])(?!\*\*\*)\S+"), rf"\1{MASK}"),
    # Long base64/hex blobs shortly after a secret/key/token word (e.g. "signing key is 9f8e…"),
    # the word whole as above: "tokenizer-service-…" in a URL is no token.
    (
        re.compile(rf"(\b\w*?(?i:secret|key|token)s?{_WORD_END}\w*[^A-Za-z0-9+/\n]{{1,6}}(?:\w+\s+){{0,2}}?)"
                   r"(?!\*\*\*)([A-Za-z0-9+/_-]{24,}={0,2})"),
        rf"\1{MASK}",
    ),
)

_PEM_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----")


class Redactor:
    """Replaces registered secret values and credential-looking text with `***`. Thread-safe."""

    def __init__(self, values: list[str] | tuple[str, ...] = ()) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._known: re.Pattern[str] | None = None
        for value in values:
            self.add(value)

    def add(self, value: str | None, *, user: str | None = None) -> None:
        """Register a secret value: it, each of its lines and its URL-encoded form are masked.
        With the `user` it belongs to, also base64("user:value"): the `auth` of a docker config
        and the token of HTTP Basic authentication."""
        if not value:
            return
        forms = {value, value.strip(), urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}
        # Output is redacted a line at a time, so a multi-line secret only ever appears in pieces.
        forms.update(line.strip() for line in value.splitlines())
        if user:
            pair = f"{user}:{value}".encode()
            for encoded in (base64.b64encode(pair), base64.urlsafe_b64encode(pair)):
                text = encoded.decode("ascii")
                forms.update({text, text.rstrip("=")})
        forms = {f for f in forms if len(f) >= MIN_SECRET_LENGTH}
        with self._lock:
            if forms <= self._values:
                return
            self._values |= forms
            # Longest first, so a secret that contains another is masked whole.
            ordered = sorted(self._values, key=len, reverse=True)
            self._known = re.compile("|".join(re.escape(v) for v in ordered))

    def add_credentials(self, user: str | None, secret: str | None) -> None:
        """Register a username/secret pair (a registry login): see add(value, user=...)."""
        self.add(secret, user=user)

    def redact(self, text: str) -> str:
        """Mask known values and credential shapes in `text` (any number of lines)."""
        if not text:
            return text
        known = self._known
        if known is not None:
            text = known.sub(MASK, text)
        for pattern, replacement in _SHAPES:
            text = pattern.sub(replacement, text)
        return text

    def redact_known(self, text: str) -> str:
        """Mask only registered values: for structured data (image refs, digests) where the
        shape heuristics could mangle a legitimate value."""
        known = self._known
        return known.sub(MASK, text) if known is not None and text else text

    def stream(self) -> LineRedactor:
        """A per-stream line filter that also masks multi-line PEM private key blocks."""
        return LineRedactor(self)


class LineRedactor:
    """Redacts one stream line by line, remembering whether it is inside a private key block."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._in_key = False

    def __call__(self, line: str) -> str:
        if self._in_key:
            end = _PEM_END.search(line)
            if end is None:
                return MASK
            self._in_key = False
            return MASK + self._redactor.redact(line[end.end():])
        begin = _PEM_BEGIN.search(line)
        if begin is not None and _PEM_END.search(line, begin.end()) is None:
            self._in_key = True
            return self._redactor.redact(line[: begin.start()]) + MASK
        return self._redactor.redact(line)
