"""Keep secrets out of everything deployctl prints, stores or uploads.

Two kinds of protection, both replacing with `***`:
- *known* values registered with `Redactor.add()` (secrets read from deploy.yaml's secret
  sources, registry passwords, tokens from the environment): exact, no false positives;
- *shapes* that look like credentials (AWS key ids, `password=…`, bearer tokens, `sk-…` API
  keys, PEM private keys…): a net for secrets nobody told us about. Shapes err on the side of
  hiding a little too much; a log line missing a harmless value is cheaper than a leaked key.

Output is line-oriented, but some secrets span many lines: a PEM private key, YAML that puts
a secret key's value on the lines below it (`password:` then `  - hunter2`, `token: |` then the
text), and a prompt that prints a value on the line after its key (`Your new API token:`).
Per-stream redaction goes through `Redactor.stream()`, which remembers whether it is inside such
a block; `Redactor.redact(text)` applies the same rule across the lines of one text.

Why one long module: the key, token and block shapes are built from the same regex pieces and
run as one ordered table (`_SHAPES`), and that order is part of what keeps a secret out; split
across modules, a change to one shape could no longer be read next to the shapes it overlaps.
"""

from __future__ import annotations

import base64
import functools
import re
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any

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
# Nor is the name in a `${NAME:-default}` reference.
_KEY_START = r"(?<![A-Za-z0-9_.:/-])(?<!\$\{)"
_KEY_BODY = rf"(?=[A-Za-z0-9_.-]*?{_SECRET_WORD})[A-Za-z0-9_.-]+"
_SECRET_KEY = _KEY_START + _KEY_BODY
# Spaces, not `\s`: in a whole text, `password:` at the end of a line must not take the start of
# the next line as its value (that line is a block value, masked by _Blocks, or not one at all).
#
# The first lookahead is a cheap guard: an assigned key is a whole run of key characters followed
# by `=`/`:` (quotes, spaces and the sign are not key characters, so no shorter run could be), and
# checking that first spares the costly search for a secret word inside every other run of a long
# line (each word of a minified JSON value or a base64 blob).
_ASSIGN = rf"({_KEY_START}(?=[A-Za-z0-9_.-]++[\"']?[ \t]*+[=:]){_KEY_BODY}[\"']?[ \t]*[=:][ \t]*)"

_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# `inherit` is GitHub Actions' `secrets: inherit`: pass the caller's secrets on, by name.
_LITERALS = frozenset({"true", "false", "null", "none", "yes", "no", "inherit"})
# A YAML block scalar header (`|`, `|-`, `>+`, `|2`, `>2-`, `|-2`): the value is on the following
# lines. Only the forms YAML allows (one indentation digit 1-9, one chomping sign), so that
# `password: >12345` or `DB_PASSWORD=|2024` is a value, not a header.
_INDICATOR = r"[|>](?:[1-9][+-]?|[+-][1-9]?)?"
# YAML node properties a key's value may start with: an anchor (`&pw`) and/or a tag (`!!binary`).
_PROPS = r"(?:[&!][^\s\[\]{},]*+[ \t]++)*+"
# What the rest of a `key:` line can be that says "the value follows on the next lines": optional
# properties, then a block scalar header or the opening bracket of a multi-line JSON/flow
# collection, then the end of the line or a comment (see _mask_assignment). It is no secret itself.
_OPENS_BLOCK = re.compile(rf"{_PROPS}(?:{_INDICATOR}|[\[{{])[ \t]*+")
# Values that name a secret rather than being one: an ARN, an SSM parameter or a Secrets Manager
# reference (as ECS task definitions and deploy.yaml's `secrets:` give them).
_REFERENCES = ("arn:", "ssm:", "secretsmanager:")
_REFERENCE = r"(?:arn|ssm|secretsmanager):"
# An anchor or a core tag between a key and its value on one line (`password: &pw x`).
_VALUE_PROPS = r"((?:&[A-Za-z0-9_-]++[ \t]++|!![A-Za-z]++[ \t]++)*+)"


# A variable named in place of its value: `$NAME`, `${NAME}` (names in capitals only: `$ecret1`
# may well be a password) or a GitHub Actions expression, whose value the runner masks itself.
_ENV_REF_RE = r"\$(?:\{\{[^\n]*?\}\}|\{[A-Z_][A-Z0-9_]*+\}|[A-Z_][A-Z0-9_]*+)"
# A placeholder that hints and docs put where a value goes: `export NPM_TOKEN=…`, `TOKEN=<token>`.
_PLACEHOLDER = re.compile(r"…|\.\.\.|<[A-Za-z_ -]*+>")
# An unquoted value ends at a space, so `password: ${{ secrets.X }}` gives the value `${{`.
_ENV_REF = re.compile(_ENV_REF_RE + r"|\$\{\{")

# A Secrets Manager IAM action (`secretsmanager:GetSecretValue`): the only AWS service prefix
# that contains one of the secret words, so the only permission name that looks like `secret…:x`.
_IAM_ACTION = re.compile(r"secretsmanager:[A-Z][A-Za-z0-9]*\*?")


def _keeps(head: str, value: str) -> bool:
    """True when the value of a secret-named key is clearly a setting, not a secret: a
    boolean/null literal, a reference to an environment variable by name (`$DB_PASSWORD`,
    `${NPM_TOKEN}`, `${{ secrets.X }}`), or a number given to a *token* name (LLM services log
    `max_tokens: 512`, `prompt_tokens=20`; a numeric password, on the other hand, is still a
    password)."""
    if value.lower() in _LITERALS or _ENV_REF.fullmatch(value) or _PLACEHOLDER.fullmatch(value):
        return True
    if _NUMBER.fullmatch(value) and "token" in head.lower():
        return True
    # `secretsmanager:GetSecretValue` names a permission, it is not one
    return bool(_IAM_ACTION.fullmatch(head + value))


def _mask_assignment(match: re.Match[str]) -> str:
    """Mask `name=value` unless the value is clearly a setting (see _keeps) or, after a `:` and
    ending the line, announces a block below (`token: |`, `private_key: !!binary |`)."""
    head, props, value = match.group(1), match.group(2), match.group(3)
    text, start = match.string, match.start(3)
    # The closing braces of a flow mapping (`{secrets: null}`) are not part of the value, nor is
    # the backtick closing a quoted command (`` `… --max-tokens=512` exited 1 ``).
    braces = ""
    if value.endswith("`") and len(value) > 1:
        braces = value[len(value.rstrip("`")):]
        value = value[:-len(braces)]
    elif value.endswith("}") and "{" in text[max(0, match.start() - 200):match.start()]:
        braces = value[len(value.rstrip("}")):]
        value = value[:-len(braces)] or value
    if _keeps(head, value):
        return match.group(0)
    if value[0] in "|>[{&!" and head.rstrip()[-1] == ":":
        # Checked up to the end of the header only, never scanning the rest of a long line.
        opens = _OPENS_BLOCK.match(text, start)
        if opens is not None:
            after = text[opens.end():opens.end() + 1]
            if after in ("", "\n", "\r") or (after == "#" and text[opens.end() - 1] in " \t"):
                return match.group(0)
    return head + props + MASK + (braces if value != braces else "")


# A bare item is the text up to its last non-space before the next comma. Written as "runs of
# spaces, each followed by a non-space" rather than `[^,]*?(\s*)(?=,|$)`: the lazy form re-scanned
# a run of spaces from each of its positions, quadratic in a long run.
_LIST_ITEM = re.compile(r"""(\s*)(?:(["'])(.*?)\2|((?:\s*+[^,\s])*))(\s*)(?=,|$)""")


def _kept(head: str, value: str) -> bool:
    """A value of a secret key left readable: already masked, a reference (see _REFERENCES) or a
    setting (see _keeps)."""
    return value == MASK or value.startswith(_REFERENCES) or _keeps(head, value)


def _mask_items(head: str, items: str) -> str:
    """The items of a flow list (`"a1b2", c3d4`) masked one by one: quotes and separators kept,
    references and settings (see _kept) left readable. A list of objects (`[{"name": …}]`) is
    masked pair by pair instead (see _mask_pairs)."""
    if items.lstrip()[:1] == "{":
        return _mask_pairs(head, items)

    def item(m: re.Match[str]) -> str:
        lead, quote, quoted, bare, trail = m.groups()
        value = quoted if quote else bare
        if not value or _kept(head, value):
            return m.group(0)
        return f"{lead}{quote or ''}{MASK}{quote or ''}{trail}"

    return _LIST_ITEM.sub(item, items)


# The `key: value` pairs of a flow mapping (`{name: db-secret, key: password}`, a JSON object) given
# to a secret key. A key starts a run of key characters (so a long run is scanned once); a value is
# a quoted string or a bare word (a nested `{`/`[` is not a value: its own pairs are).
_PAIR = re.compile(
    r"""((["']?)(?<![A-Za-z0-9_.-])([A-Za-z0-9_.-]++)\2[ \t]*+:[ \t]*+)("[^"\n]*+"|'[^'\n]*+'|[^\s,{}\[\]"']++)"""
)
# Inside a secret's block these keys *name* things (an ECS secret's `name`/`valueFrom`, a compose
# secret's `file`, `imagePullSecrets: - name: …`): the name of a secret is not the secret. `key`
# names one only under a reference (k8s `secretKeyRef: {name: db, key: password}`): under
# `api_keys:` or `credentials:`, `key: …` is likely the secret itself.
_NAMING = frozenset({"name", "file", "valuefrom"})
_REF_HEAD = re.compile(r"(?i)ref[\"' \t:]*$")


def _names(key: str | None, head: str) -> bool:
    """`key` (as _ENTRY or _PAIR found it: maybe quoted, maybe with its colon), in a block or
    mapping given to the secret key `head`, names a thing (see _NAMING)."""
    if key is None:
        return False
    name = key.rstrip(": \t").strip("\"'").lower()
    return name in _NAMING or (name == "key" and _REF_HEAD.search(head[-40:]) is not None)


def _mask_pairs(head: str, text: str) -> str:
    """The values of the `key: value` pairs in `text` masked, except naming keys and kept values."""

    def pair(m: re.Match[str]) -> str:
        key, value = m.group(3), m.group(4)
        quote = value[0] if value[0] in "\"'" else ""
        inner = value[1:-1] if quote else value
        if _names(key, head) or not inner or _kept(f"{head} {key}", inner) or _plain_name(head, inner):
            return m.group(0)
        return f"{m.group(1)}{quote}{MASK}{quote}"

    return _PAIR.sub(pair, text)


# Under a heading whose only secret word is *token* (`tokens:`, `token_usage:`: in AI apps a
# section of token counts and metrics), a value made of two or more whole words (`ChatApi/LLM`,
# `TokensPerRequest`, `AIApps/ChatAPI`) or a template placeholder (`"{service}"`) is a name, not
# a token: generated tokens are runs of mixed letters and digits, which fail this (a run without
# digits is cut into 1-2 letter pieces at its case changes). A single word (`abcdef`) could be a
# short token and stays masked; passwords can be plain words, so this is for token headings only.
_WORD = r"(?:[A-Z]{2,12}|[A-Z][a-z]{2,11}|[a-z]{3,12})(?![a-z])"
_WORDS_ONLY = re.compile(rf"{_WORD}(?:[/._-]?+{_WORD})++|\{{{_WORD}\}}")
_NOT_TOKEN_WORDS = re.compile(r"(?i)pass|pwd|secret|credent|key")


def _plain_name(head: str, value: str) -> bool:
    if len(value) > 40 or "token" not in head.lower() or _NOT_TOKEN_WORDS.search(head) is not None:
        return False
    # A word shorter than MIN_SECRET_LENGTH (`service: api`) is no token either.
    short = len(value) < MIN_SECRET_LENGTH and value.isalpha()
    return short or _WORDS_ONLY.fullmatch(value) is not None


def _mask_collection(match: re.Match[str]) -> str:
    """`passwords: ["a1b2", "c3d4"]` → `passwords: ["***", "***"]`; a flow mapping as the same
    mapping written as a block: `credentials: {user: ci, password: x}` →
    `credentials: {user: ***, password: ***}` (see _mask_pairs)."""
    head, items, pairs = match.group(1), match.group(2), match.group(3)
    if items is not None:
        return f"{head}[{_mask_items(head, items)}]"
    return f"{head}{{{_mask_pairs(head, pairs)}}}"


# --- Provider token shapes -----------------------------------------------------------------------
# Tokens whose issuer gives them a fixed prefix (most now do, so that secret scanners can find
# them). Written for deployctl from the formats the issuers and secret scanners document (GitHub
# secret scanning's supported patterns, the gitleaks and trufflehog rule sets): a prefix and a body
# at least as long as real tokens have, so prose that shares a prefix stays readable. Each is
# tried only where no letter or digit comes before it (`\b` would fail after an ANSI colour code's
# final `m`; escape sequences are removed before matching anyway, see _ANSI).
# (needle, pattern): a pattern is tried only on lines that contain its needle (see _mask_tokens).
_TOKEN_FORMS: tuple[tuple[str, str], ...] = (
    # GitHub: classic (ghp_, gho_, ghu_, ghs_, ghr_) and fine-grained PATs.
    ('gh', r"gh[pousr]_[A-Za-z0-9]{30,}+"),
    ('github_pat_', r"github_pat_[A-Za-z0-9_]{30,}+"),
    # GitLab: personal/project/group, deploy, runner, trigger, CI job, feed, OAuth, … tokens.
    ('gl', r"gl(?:pat|dt|rt|ptt|cbt|imt|ft|oas|soat|wt|ffct|agent)-[A-Za-z0-9_.-]{20,}+"),
    ('GR1348941', r"GR1348941[A-Za-z0-9_-]{20,}+"),
    # Slack: bot/user/app/refresh tokens.
    ('xox', r"xox[abposre]-[A-Za-z0-9-]{10,}+"),
    ('xoxe.', r"xoxe\.xox[bp]-[0-9]-[A-Za-z0-9-]{10,}+"),
    ('xapp-', r"xapp-[0-9]-[A-Za-z0-9-]{10,}+"),
    # Stripe secret and restricted keys (live and test), webhook signing secrets.
    ('k_', r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}+"),
    ('whsec_', r"whsec_[A-Za-z0-9+/=]{20,}+"),
    # npm, PyPI, RubyGems, NuGet, Docker Hub, JFrog, Clojars.
    ('npm_', r"npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    ('pypi-AgE', r"pypi-AgE[A-Za-z0-9_-]{40,}+"),
    ('rubygems_', r"rubygems_[a-f0-9]{48}(?![a-f0-9])"),
    ('oy2', r"oy2[a-z0-9]{43}(?![a-z0-9])"),
    ('dckr_', r"dckr_(?:pat|oat)_[A-Za-z0-9_-]{20,}+"),
    ('AKCp', r"AKCp[A-Za-z0-9]{60,}+"),
    # OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-), Anthropic (sk-ant-), OpenRouter (sk-or-):
    # see _mask_token for prose words that start with `sk-`.
    ('sk-', r"(?P<sk>sk-[A-Za-z0-9_-]{16,}+)"),
    # Hugging Face, Replicate, Groq, xAI, Perplexity, LangSmith, Pinecone.
    ('hf_', r"hf_[A-Za-z0-9]{30,}+"),
    ('api_org_', r"api_org_[A-Za-z0-9]{30,}+"),
    ('r8_', r"r8_[A-Za-z0-9]{30,}+"),
    ('gsk_', r"gsk_[A-Za-z0-9]{40,}+"),
    ('xai-', r"xai-[A-Za-z0-9]{60,}+"),
    ('pplx-', r"pplx-[A-Za-z0-9]{40,}+"),
    ('lsv2_', r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}"),
    ('pcsk_', r"pcsk_[A-Za-z0-9_]{40,}+"),
    # Google: API keys, OAuth client secrets, access and refresh tokens.
    ('AIza', r"AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
    ('GOCSPX-', r"GOCSPX-[A-Za-z0-9_-]{20,}+"),
    ('ya29.', r"ya29\.[0-9A-Za-z_-]{20,}+"),
    ('1//0', r"1//0[0-9A-Za-z_-]{30,}+"),
    # Azure AD client secrets (`…8Q~…`).
    ('Q~', r"[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])"),
    # Twilio API key secrets' SIDs, SendGrid, Mailgun, Mailchimp, Postman.
    ('SK', r"SK[0-9a-fA-F]{32}(?![0-9a-fA-F])"),
    ('SG.', r"SG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}"),
    ('key-', r"key-[0-9a-f]{32}(?![0-9a-f])"),
    # (Mailgun's newer keys have no literal part and are left to the name rule, see _SECRET_WORD:
    # a pattern without one costs a try at every word of every line.)
    ('-us', r"[0-9a-f]{32}-us[0-9]{1,2}(?![0-9a-z-])"),
    ('PMAK-', r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}"),
    # Shopify, Databricks, DigitalOcean, Vercel, Netlify, Render, Fly.io, Heroku, Supabase.
    ('shp', r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"),
    ('dapi', r"dapi[a-f0-9]{32}(?:-[0-9]+)?+"),
    ('do', r"do[por]_v1_[a-f0-9]{64}"),
    ('vc', r"vc[pirak]_[A-Za-z0-9]{20,}+"),
    ('nfp_', r"nfp_[A-Za-z0-9]{30,}+"),
    ('rnd_', r"rnd_[A-Za-z0-9]{20,}+"),
    ('fo1_', r"fo1_[A-Za-z0-9_-]{30,}+"),
    ('fm', r"fm[12][ar]?_[A-Za-z0-9+/=_-]{40,}+"),
    ('HRKU-', r"HRKU-[A-Za-z0-9_-]{20,}+"),
    ('sbp_', r"sbp_[a-f0-9]{40}"),
    ('sb_secret_', r"sb_secret_[A-Za-z0-9_-]{20,}+"),
    # HashiCorp Vault and Terraform Cloud, Doppler, Pulumi, Tailscale, Age.
    ('hv', r"hv[sb]\.[A-Za-z0-9_-]{24,}+"),
    ('.atlasv1.', r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,}+"),
    ('dp.', r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}+"),
    ('pul-', r"pul-[a-f0-9]{40}"),
    ('tskey-', r"tskey-(?:auth|api|client|webhook)-[A-Za-z0-9-]{20,}+"),
    ('AGE-SECRET-KEY-1', r"AGE-SECRET-KEY-1[0-9A-Z]{58}"),
    # Grafana, Sentry, New Relic, Dynatrace, Atlassian, Linear, Notion, Airtable, Figma,
    # Contentful, Buildkite, CircleCI, Square.
    ('glc_', r"glc_[A-Za-z0-9+/]{32,}+={0,2}"),
    ('glsa_', r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}"),
    ('sntr', r"sntr[ysu]_[A-Za-z0-9+/=_]{40,}+"),
    ('NRAK-', r"NRAK-[A-Z0-9]{27}"),
    ('dt0c01.', r"dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}"),
    ('ATATT3', r"ATATT3[A-Za-z0-9_=-]{100,}+"),
    ('lin_', r"lin_(?:api|oauth)_[A-Za-z0-9]{30,}+"),
    ('ntn_', r"ntn_[A-Za-z0-9]{40,}+"),
    ('secret_', r"secret_[A-Za-z0-9]{43}(?![A-Za-z0-9])"),
    ('pat', r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}"),
    ('figd_', r"figd_[A-Za-z0-9_-]{30,}+"),
    ('CFPAT-', r"CFPAT-[A-Za-z0-9_-]{40,}+"),
    ('bkua_', r"bkua_[a-f0-9]{40}"),
    ('CCIPAT_', r"CCIPAT_[A-Za-z0-9]{20,}+_[a-f0-9]{40}"),
    ('sq0', r"sq0(?:atp|csp)-[A-Za-z0-9_-]{22,}+"),
    ('EAAA', r"EAAA[A-Za-z0-9_-]{60,}+"),
    # JSON Web Tokens: a header and a payload that are both base64url of `{"…`, and a signature
    # (empty for `alg: none`).
    ('eyJ', r"eyJ[A-Za-z0-9_-]{5,}+\.eyJ[A-Za-z0-9_-]{5,}+\.[A-Za-z0-9_-]*+"),
)
# Telegram bot tokens come after `/bot` in API URLs, so only a digit may not precede them.
_TELEGRAM = r"(?<![0-9])[0-9]{8,10}:AA[A-Za-z0-9_-]{32,}+"


@functools.lru_cache(maxsize=256)
def _tokens(forms: tuple[int, ...]) -> re.Pattern[str]:
    """One pattern for the token forms whose needles a line holds. One alternation of all of them
    tried at every word of a long line cost more than the rest of redaction together; most lines
    hold no needle at all, and a line holds few."""
    # No lookbehind in front (it would keep the engine from skipping to the literal prefixes):
    # _mask_token checks the character before a match instead.
    parts = [_TOKEN_FORMS[i][1] for i in forms if i >= 0]
    alternatives = ["(?:" + "|".join(parts) + ")"] if parts else []
    if -1 in forms:
        alternatives.append(_TELEGRAM)
    return re.compile("|".join(alternatives))


# Every needle found in one pass (75 `in` scans of a long line cost more than this one search).
_NEEDLES = re.compile("|".join(sorted({re.escape(n) for n, _ in _TOKEN_FORMS} | {":AA"}, key=len, reverse=True)))
_FORMS_OF: dict[str, tuple[int, ...]] = {}
for _i, (_needle, _) in enumerate(_TOKEN_FORMS):
    _FORMS_OF[_needle] = (*_FORMS_OF.get(_needle, ()), _i)
_FORMS_OF[":AA"] = (-1,)


def _overlaps(a: str, b: str) -> bool:
    """`b` can hide inside or behind `a` in one findall pass (`gl` in `glc_`, `-us` after `xai-`)."""
    return b != a and (b in a or any(a.endswith(b[:k]) for k in range(1, len(b))))


# The needles one found needle can hide from findall, looked for with `in` when it is found.
_HIDDEN = {a: tuple(b for b in _FORMS_OF if _overlaps(a, b)) for a in _FORMS_OF}


def _mask_tokens(text: str) -> str:
    found = set(_NEEDLES.findall(text))
    if not found:
        return text
    # A needle overlapping a found one (`gl` in `glc_`) is looked for on its own too.
    found |= {n for f in tuple(found) for n in _HIDDEN[f] if n in text}
    forms = tuple(sorted({i for n in found for i in _FORMS_OF[n]}))
    return _tokens(forms).sub(_mask_token, text) if forms else text


def _mask_token(match: re.Match[str]) -> str:
    """A provider token becomes `***`; but `sk-` starts words of prose and package names too
    (`sk-learn-compatible-estimators`): an `sk-` token is masked only when it holds a digit or a
    capital letter, as generated keys always do. A match right after a letter or digit is no
    token (`xghp_…`, `undo_v1_…`)."""
    prev = match.string[match.start() - 1] if match.start() else ""
    if prev.isascii() and prev.isalnum() and not match.group()[0].isdigit():
        return match.group()
    if "sk" in match.re.groupindex and match.group("sk") is not None:
        body = match.group()[3:]
        if body.islower() and not any(c.isdigit() for c in body):
            return match.group()
    return MASK


# Webhook URLs: Slack incoming/workflow/trigger hooks, Discord, Microsoft Teams. The path holds
# the credential.
_WEBHOOKS = re.compile(
    r"(?i)((?:hooks\.slack\.com/(?:services|workflows|triggers)|discord(?:app)?\.com/api/webhooks"
    r"|webhook\.office\.com/webhookb2)/)[^\s\"'<>`]++"
)

_URL_CREDENTIALS = re.compile(
    r"((?<![A-Za-z0-9+.-])[0-9+.-]*+[A-Za-z][A-Za-z0-9+.-]*+://[^\s:/@\"'<>`]*+:)([^\s@\"'<>`]{1,256}+)(@)"
)
_PORT_AND_PATH = re.compile(r"[0-9]*+(?:/.*)?")


def _mask_url_password(match: re.Match[str]) -> str:
    password = match.group(2)
    if password == MASK or _PORT_AND_PATH.fullmatch(password):
        return match.group()  # `host:8080/users/@me`: a port and a path, no password
    return f"{match.group(1)}{MASK}@"


# A run of capitals, digits, `_` and `/` (`AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY`): the names of
# environment variables, as hints and docs list them, not a generated secret (24 random base64
# characters with no lowercase letter and no digit have odds below one in a billion).
_NAMES_ONLY = re.compile(r"[A-Z_/-]++")


def _mask_blob(match: re.Match[str]) -> str:
    if _NAMES_ONLY.fullmatch(match.group(2)):
        return match.group()
    return match.group(1) + MASK


# (pattern, replacement, needles). Replacements keep the name and drop the value, so a log still
# says *which* thing was set, e.g. `password=***`.
#
# Needles make long lines cheap: a shape is only tried when the line contains one of the literals
# every match of it must contain (checked with `in`, which runs at memory speed, instead of letting
# the regex engine try the pattern at every offset). They are looked up in the line casefolded:
# casefold() maps every character that `(?i)` matches to an ASCII letter onto that letter, except
# the dotted/dotless i (İ, ı), so no needle of a `(?i)` shape contains an "i" ("credent",
# "author"). Masking never creates a needle (`***` is in none), so they are checked once, on the
# line as it came in. A shape without needles is always tried.
_Replacement = str | Callable[[re.Match[str]], str]
_CASE = 0  # needles looked up in the line as is
_FOLD = 1  # needles looked up in the casefolded line
# Every key `_SECRET_WORD` accepts contains one of these.
_SECRET_NEEDLES = ("pass", "pwd", "token", "secret", "credent", "key")
_SHAPES: tuple[tuple[re.Pattern[str], _Replacement, int, tuple[str, ...]], ...] = (
    # (PEM private keys on a single line: see _mask_pem, applied before these.)
    # AWS access key ids: long-term (AKIA) and temporary STS (ASIA) plus the other IAM prefixes.
    (re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}\b"), MASK, _CASE, ()),
    # aws_secret_access_key = ..., AWS_SECRET_ACCESS_KEY: ..., "SecretAccessKey": "..."
    (
        re.compile(r"(?i)(aws_?secret_?access_?key|secretaccesskey)([\"']?\s*[=:]\s*[\"']?)[^\s\"',;]+"),
        rf"\1\2{MASK}", _FOLD, ("secret",),
    ),
    # HTTP auth headers, any scheme (Bearer, Basic, token, AWS4-HMAC-SHA256 …).
    (re.compile(r"(?i)\b(authorization\s*[:=]\s*[\"']?)(\S+\s+)?[^\s\"',]+"), rf"\1\2{MASK}", _FOLD, ("author",)),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\1{MASK}", _FOLD, ("bearer",)),
    # (Provider tokens with a recognisable prefix: see _mask_tokens, applied before these.)
    # Webhook URLs whose path is the credential (the host and the kind of hook stay readable).
    (_WEBHOOKS, rf"\1{MASK}", _FOLD, ("hooks.slack.com", "/api/webhooks/", "webhook.office.com")),
    # Credentials inside URLs: scheme://user:password@host, also with no user (`redis://:pw@h`),
    # an uppercase scheme (`HTTPS://`) and a `/` inside the password. The scheme is matched from
    # the start of its run of scheme characters (digits and `+.-` allowed before its first letter)
    # rather than as `[a-z][a-z0-9+.-]*` tried at every offset: that form rescanned a long run (a
    # hex digest, a dotted or dashed name) from each of its letters, quadratic in the run's length.
    # The password is bounded (a run of 256 without `@` is no password), so a line of many `://`
    # without `@` is not rescanned to its end from each of them. `host:8080/path@x` is a port.
    (_URL_CREDENTIALS, _mask_url_password, _CASE, ("://",)),
    # The `auth` of a docker config.json: base64("user:password").
    (re.compile(r"""(?i)(["']auth["'][ \t]*+:[ \t]*+["'])[A-Za-z0-9+/=]{8,}+(?=["'])"""), rf"\1{MASK}", _FOLD,
     ('"auth"', "'auth'")),
    # Azure storage / Service Bus connection strings and SAS signatures.
    (re.compile(r"(?i)((?<![A-Za-z0-9])(?:AccountKey|SharedAccessKey|SharedAccessSignature|sig)=)[^;\s\"'&]++"),
     rf"\1{MASK}", _FOLD, ("accountkey", "sharedaccess", "sig=")),
    # user:password given to curl/wget-style flags: `-u ci:S3cret`, `--user 'ci:S3cret'`. A
    # numeric pair is `docker run -u 1000:1000`, a uid and gid.
    (
        re.compile(r"""((?<![\w-])(?:-u\s*|--user[= ]\s*)(["'])[^\s:"']+:)(?!\*\*\*)(?![0-9]+\2)[^"'\n]+(?=\2)"""),
        rf"\1{MASK}", _CASE, ("-u",),
    ),
    (
        re.compile(r"""((?<![\w-])(?:-u\s*|--user[= ]\s*)[^\s:"']+:)(?!\*\*\*)(?![0-9]+(?:\s|$))[^\s"']+"""),
        rf"\1{MASK}", _CASE, ("-u",),
    ),
    # name=value / name: value for password, token, secret, api_key, … (env dumps, CLI flags,
    # YAML, JSON). Only `=`/`:` count as assignment: "reading secrets from Secrets Manager" must
    # stay readable. References (ARNs, `ssm:`…) are left alone: they name a secret. First a flow list of values
    # (`passwords: ["a1", "b2"]`), item by item. (_ASSIGNS below: these three also need `=`/`:`.)
    # So is a flow mapping (`secretKeyRef: {name: db, key: password}`), pair by pair.
    (re.compile(rf"{_ASSIGN}(?:\[([^\]\n]*)\]|\{{([^{{}}\n]*)\}})"), _mask_collection, _FOLD, _SECRET_NEEDLES),
    # Quoted values are masked up to the closing quote, spaces and all. (A YAML anchor or core
    # tag before a value, `password: &pw "x"`, `password: !!str x`, stays; the value does not.)
    (
        re.compile(rf"{_ASSIGN}{_VALUE_PROPS}([\"'])(?!\*\*\*)(?!{_REFERENCE}|{_ENV_REF_RE}\3)[^\"'\n]+\3"),
        rf"\1\2\3{MASK}\3", _FOLD, _SECRET_NEEDLES,
    ),
    # The same, unquoted: the value ends at whitespace or a separator (see _mask_assignment
    # for the values let through). A whole `[…]` list was handled above; a flow mapping
    # (`secretKeyRef: {name: db, key: password}`) is no value, its own `key: value` pairs are; a
    # `#` then a space after the sign starts a YAML comment (`tokens:   # per request`).
    (
        re.compile(rf"{_ASSIGN}{_VALUE_PROPS}(?!\*\*\*|{_REFERENCE}|\[[^\]\n]*\]|\{{[^{{}}\n]*\}}|#(?:\s|$))"
                   r"([^\s\"',;&]+)"),
        _mask_assignment, _FOLD, _SECRET_NEEDLES,
    ),
    # --password VALUE / --token VALUE flags (docker login, CLIs).
    (re.compile(r"(?i)(--(?:password|passwd|pass|token|secret)[= ])(?!\*\*\*)\S+"), rf"\1{MASK}", _CASE, ("--",)),
    # Long base64/hex blobs shortly after a secret/key/token word (e.g. "signing key is 9f8e…"),
    # the word whole as above: "tokenizer-service-…" in a URL is no token. The words between
    # (`\w++\s++`) are possessive: \w, \s and the blob's first character are disjoint classes, so
    # giving characters back could never let the rest match, only cost time. (See _BLOB for the
    # extra condition this shape is tried under.)
    (
        re.compile(rf"(\b\w*?(?i:secret|key|token)s?{_WORD_END}\w*[^A-Za-z0-9+/\n]{{1,6}}(?:\w++\s++){{0,2}}?)"
                   r"(?!\*\*\*)([A-Za-z0-9+/_-]{24,}={0,2})"),
        _mask_blob, _FOLD, ("secret", "key", "token"),
    ),
)
# Shapes that also need an assignment sign in the line (the _ASSIGN ones).
_ASSIGNS = frozenset(i for i, shape in enumerate(_SHAPES) if shape[0].pattern.startswith(_ASSIGN))
# The last shape masks a run of at least 24 blob characters: a line without one skips it.
_BLOB = re.compile(r"[A-Za-z0-9+/_-]{24}")
_LAST = len(_SHAPES) - 1


def token_patterns() -> tuple[re.Pattern[str], ...]:
    """The shapes masked whole (provider tokens such as `xoxb-…`, `hf_…`), for scanners of files.

    The `key=value` shapes are left out: in a source file `token = get_token()` is code, not a
    secret. AWS key ids alone are identifiers, so they are left out too.
    """
    return tuple(s[0] for s in _SHAPES if s[1] == MASK and "AKIA" not in s[0].pattern)


def _mask_shapes(text: str) -> str:
    """Apply every credential shape to `text` (see _SHAPES), skipping the shapes it cannot match."""
    text = _mask_tokens(_mask_pem(text))
    folded = text.casefold()
    assigns = "=" in text or ":" in text
    for i, (pattern, replacement, where, needles) in enumerate(_SHAPES):
        if needles:
            haystack = folded if where == _FOLD else text
            if not any(n in haystack for n in needles):
                continue
        if i in _ASSIGNS and not assigns:
            continue
        if i == _LAST and _BLOB.search(text) is None:
            continue
        text = pattern.sub(replacement, text)
    return text


# A PEM private key (or an OpenPGP `PRIVATE KEY BLOCK`) on a single line (e.g. a JSON-escaped
# key in one string), `-----BEGIN … PRIVATE KEY-----` to the first matching END line, masked
# whole. Found with str.find rather than `BEGIN.*?END` under DOTALL, which re-scanned the rest of
# the text from every BEGIN without an END (quadratic in a line of many); a label with no END
# after one BEGIN has none after any later BEGIN either, so it is searched for once.
_PEM_ONE = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----")


def _mask_pem(text: str) -> str:
    if "PRIVATE KEY" not in text:
        return text
    out: list[str] = []
    done = 0  # text[:done] is settled
    at = 0  # where to look for the next BEGIN
    no_end: set[str] = set()
    while (begin := _PEM_ONE.search(text, at)) is not None:
        label = begin.group(1)
        end = -1 if label in no_end else text.find(f"-----END {label}-----", begin.end())
        if end < 0:
            no_end.add(label)
            at = begin.start() + 1
            continue
        out += (text[done:begin.start()], MASK)
        done = at = end + len(f"-----END {label}-----")
    return "".join(out) + text[done:] if out else text


_PEM_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")

# --- Values on the lines below a secret key -----------------------------------------------------
# YAML (and pretty-printed JSON) can give a secret key's value on the following lines:
#
#     password:            api_keys:          token: |          credentials:     "api_keys": [
#       - hunter2          - sk-abc…            line one          user: ci         "sk-abc…",
#                                                                 password: x    ]
#
# A line that is only a secret-looking key (the same whole-word rule as `password=…`, so
# `tokenizer:` opens nothing) with an empty value, a block scalar header or an opening bracket
# opens a block. The lines below it that are indented deeper belong to it; the first non-blank
# line indented at or left of the key ends it, and is then read as an ordinary line (it may open
# the next block). In a block: list items and scalar text become `***`, nested keys stay visible
# with their values masked, and settings and references (`true`, numbers under a *token* name,
# ARNs, `ssm:` parameters: see _kept) stay readable, as on a single line; so do the keys that
# name things (see _NAMING) and names under a token heading (see _plain_name). A trailing
# `# comment` is no part of a value: it stays, and the value is judged without it.
#
# A secret key ending a line with no value at all (`password:`, `DB_PASSWORD=`, `Your new API
# token:`) may have it on the next line: when that line is not indented deeper (deeper, it is
# the key's block) and is no `key:` or `- item` of its own, its first word is masked (the whole
# line when it is one word). Blank and comment lines in between are skipped.
#
# Blank lines end nothing, as in YAML: inside a block scalar they are part of the text
# (paragraphs of a key or certificate), and dumpers never put one inside a collection, so only
# the next non-blank line's indentation decides. Nor does a comment line left of the block's
# content (`# rotated` at column 0 between two items): YAML ignores it, and so do we. Output
# unrelated to YAML (a traceback, pytest's report) opens no block: it would need a line that is
# nothing but `secret_word:` first.
# Like YAML, a `- item` at the key's own column is the key's list (`password:` / `- x`, the
# style of kubectl and yq) — but not after `|` or `[`, whose content must be indented. An anchor
# or a tag may come first (`password: &pw`, `private_key: !!binary |`).
#
# Every run of spaces is matched possessively: with plain `[ \t]*` on both sides of the optional
# header, a line that is a secret key, a long run of spaces and then a value (`password:` + 2,000
# spaces + `{a: b}`) was tried at every way of splitting the run, for seconds.
_OPENER = re.compile(
    rf"""[ \t]*+(?:-[ \t]++)*+(["']?)({_SECRET_KEY})\1[ \t]*+:[ \t]*+(?:[&!][^\s\[\]{{}},]*+[ \t]*+)*+"""
    rf"""({_INDICATOR}|[\[{{])?[ \t]*+(?:\#.*)?\s*"""
)
# Inside a block: list dashes, then an optional `key:` (YAML wants a space or the end of the line
# after its colon, so `https://x` and `host:5432` are values, not keys). A bare key runs to the
# first such colon, stepping over the others; written as one possessive pass instead of
# `[^#]*?[ \t]*:`, whose lazy steps re-scanned a run of spaces from each of its positions.
_ENTRY = re.compile(
    r"""((?:-(?:[ \t]+|(?=\s*$)))*)((?:"[^"]*"[ \t]*|'[^']*'[ \t]*|[^\s"'#\[\]{},:](?:[^#:]|:(?![ \t]|\s*$))*+)"""
    r""":(?:[ \t]+|(?=\s*$)))?"""
)
_HEADER = re.compile(rf"{_PROPS}{_INDICATOR}(?:[ \t]+#.*)?")
_QUOTED = re.compile(r"""(["'])(.*)\1([ \t]*,?)""")
_FLOW_LIST = re.compile(r"""\[(.*)\]([ \t]*,?)""")
_FLOW_MAP = re.compile(r"""\{(.*)\}([ \t]*,?)""")
_PUNCTUATION = re.compile(r"[\[\]{}, \t]*")


class _Blocks:
    """Masks the values a secret key gives on the lines below it (see above), a line at a time.
    Keeps only the open block's columns, so following a stream costs a regex match per line."""

    __slots__ = ("_col", "_compact", "_head", "_pending", "_pending_indent", "_scalar")

    def __init__(self) -> None:
        self._col: int | None = None  # column of the open block's key; None: no block open
        self._head = ""  # that key, for _keeps (`tokens:` keeps its counts)
        self._compact = False  # a `- item` at the key's own column still belongs to it
        self._scalar: int | None = None  # inside a block scalar owned by a key at this column
        self._pending: str | None = None  # a secret key that ended the last line with no value
        self._pending_indent = 0  # that line's indentation

    def step(self, line: str) -> str | None:
        """`line` with its values masked when it lies inside a block or is the value of the key
        that ended the line before it, else None (after noting whether it opens a block)."""
        text = line.lstrip()
        quiet = not text or text[0] == "#"  # blank lines and comments change nothing
        if self._col is not None:
            masked = self._inside(line, self._col)
            if masked is not None:
                if not quiet:
                    self._pending = None  # the key's value was this block
                return masked
            self._col = None
        if quiet:
            return None
        out = self._next_line_value(line, text) if self._pending is not None else None
        self._pending = None
        opener = _OPENER.fullmatch(line) if ":" in line else None
        if opener is not None:
            col, header = opener.start(1), opener.group(3)
            self._col, self._head = col, opener.group(2)
            self._compact = header is None
            self._scalar = col if header is not None and header[0] in "|>" else None
        # `password:` / `DB_PASSWORD=` / `Your new API token:` ending the line: its value may be
        # on the next line (an unindented one; an indented one is the key's block, see above).
        end = line if line[-1] not in " \t\r" else line.rstrip()
        if end[-1:] in (":", "="):
            key = _key_before_sign(end[:-1])
            if key is not None:
                self._pending, self._pending_indent = key, len(line) - len(text)
        return out

    def _next_line_value(self, line: str, text: str) -> str | None:
        """The first word of `line` masked (the whole line when it is one token), when it is the
        value of the key that ended the line before it: not indented deeper than that line, and
        not a YAML key or list item of its own (`name: x`, `- x`: the next entry of a mapping)."""
        indent = len(line) - len(text)
        assert self._pending is not None
        if indent > self._pending_indent:
            return None
        entry = _ENTRY.match(line, indent)
        assert entry is not None
        if entry.group(1) or entry.group(2):
            return None
        token = text.rstrip()
        if " " in token or "\t" in token:
            first = _FIRST_WORD.match(token)
            assert first is not None
            token = first.group(0)
        quote = token[0] if token[0] in "\"'" and len(token) > 1 and token[-1] == token[0] else ""
        value = token[1:-1] if quote else token
        if not value or _PUNCTUATION.fullmatch(value) or _kept(self._pending, value):
            return None
        return f"{line[:indent]}{quote}{MASK}{quote}{text[len(token):]}"

    def _inside(self, line: str, col: int) -> str | None:
        text = line.lstrip()
        if not text:
            return line
        indent = len(line) - len(text)
        if self._scalar is not None:
            if indent > self._scalar:
                return line[:indent] + MASK + text[len(text.rstrip()):]
            if text[0] == "#":
                return line  # a comment left of the text: the text may go on below it
            self._scalar = None
        if indent > col or (self._compact and indent == col and _is_item(text)):
            return self._entry(line, indent)
        if text[0] == "#":
            return line  # a comment at or left of the key's column ends nothing
        return None

    def _entry(self, line: str, indent: int) -> str:
        entry = _ENTRY.match(line, indent)
        assert entry is not None  # every part of the pattern is optional
        dashes, key = entry.group(1), entry.group(2)
        rest = line[entry.end():]
        value = _uncommented(rest.rstrip())
        if not value or _PUNCTUATION.fullmatch(value):
            return line  # a nested key whose value follows, a bare `-`, a closing bracket
        if _HEADER.fullmatch(value):
            # `key: |` or `- |`: its text is on the lines indented deeper than the key or dash.
            if key:
                self._scalar = indent + len(dashes)
            else:
                self._scalar = indent + len(dashes.rstrip()) - 1 if dashes else indent
            return line
        if _names(key, self._head):
            return line  # `name: db-secret`, `valueFrom: arn:…`: see _NAMING
        head = f"{self._head} {key or ''}"
        quoted = _QUOTED.fullmatch(value)
        flow = None if quoted else _FLOW_LIST.fullmatch(value)
        mapping = None if quoted or flow else _FLOW_MAP.fullmatch(value)
        if quoted is not None:
            quote, inner, tail = quoted.groups()
            kept = not inner or self._kept(head, inner)
            masked = value if kept else f"{quote}{MASK}{quote}{tail}"
        elif flow is not None:
            masked = f"[{_mask_items(head, flow.group(1))}]{flow.group(2)}"
        elif mapping is not None:
            masked = f"{{{_mask_pairs(head, mapping.group(1))}}}{mapping.group(2)}"
        else:
            bare, comma = (value[:-1], ",") if value.endswith(",") else (value, "")
            masked = value if self._kept(head, bare) else MASK + comma
        return line[:entry.end()] + masked + rest[len(value):]

    @staticmethod
    def _kept(head: str, value: str) -> bool:
        return _kept(head, value) or _plain_name(head, value)


# The first word of a line: a quoted string, or a run up to a space or separator.
_FIRST_WORD = re.compile(r""""[^"\n]*+"|'[^'\n]*+'|[^\s"',;&]++|\S""")
# A key at the end of a line (read backwards: the characters of the key reversed, after an
# optional quote and spaces); at most _MAX_KEY characters are looked at, so a long line costs no
# more than a short one.
_MAX_KEY = 128
_KEY_REVERSED = re.compile(r"""[ \t]*+["']?([A-Za-z0-9_.-]++)""")
_WHOLE_KEY = re.compile(_KEY_BODY)
_NEEDLE = re.compile("|".join(_SECRET_NEEDLES))


def _key_before_sign(text: str) -> str | None:
    """The secret key `text` ends with (`… API token`, `DB_PASSWORD`, `"password"`), if any."""
    tail = text[-_MAX_KEY - 1:][::-1]
    found = _KEY_REVERSED.match(tail)
    if found is None or found.end() == len(tail) > _MAX_KEY:
        return None
    if tail[found.end():found.end() + 1] in (":", "/"):
        return None  # inside an ARN or a URL (see _KEY_START)
    key = found.group(1)[::-1]
    if _NEEDLE.search(key.casefold()) is None:
        return None  # cheap first: most keys ending a line (`-> None:`) hold no secret word
    return key if _WHOLE_KEY.fullmatch(key) else None


def _uncommented(value: str) -> str:
    """`value` without a trailing YAML comment (` # …`), which says what the value is for and is
    no part of it (`hourly_cap: 3000000  # budget` keeps its count readable)."""
    if "#" not in value:
        return value
    start = 0
    if value[0] in "\"'":
        close = value.find(value[0], 1)
        start = close + 1 if close > 0 else 0
    cut = min((i for i in (value.find(" #", start), value.find("\t#", start)) if i >= 0), default=-1)
    return value if cut < 0 else value[:cut].rstrip()


def _is_item(text: str) -> bool:
    """`text` (a line without its indentation) is a YAML list item: `- x` or a bare `-`."""
    return text[:1] == "-" and text[1:2] in ("", " ", "\t")


def _mask_blocks(text: str) -> str:
    """Redactor.redact's view of _Blocks: the same rule across the lines of one text."""
    if ":" not in text and "=" not in text:
        return text  # every block starts with `key:`, every value on the next line `key:`/`key=`
    blocks = _Blocks()
    lines = text.split("\n")
    for i, line in enumerate(lines):
        masked = blocks.step(line)
        if masked is not None:
            lines[i] = masked
    return "\n".join(lines)


# --- Terminal escape sequences -------------------------------------------------------------------
# Coloured output puts escape sequences around and inside secrets (`\033[31mghp_…\033[0m`): the
# `m` that ends a colour code is a word character, so `\bghp_` no longer matches, and a code in
# the middle splits a value in two. Text is matched with its escape sequences removed: CSI
# (colours, cursor moves, erasing), and the string sequences (OSC, DCS, APC, …) whose payload is
# kept, spaced off, since it can hold a URL (an OSC 8 hyperlink) and so a credential. A text in
# which nothing is masked is returned as it came, colours and all; a line in which something is
# masked is returned without its escape sequences, so no colour is left open and no sequence is
# cut in half by a mask.
_ANSI = re.compile(
    r"\x1b\[[0-?]*+[ -/]*+[@-~]"
    r"|\x9b[0-?]*+[ -/]*+[@-~]"
    r"|\x1b[\]PX^_]([^\x07\x1b\x9c]*+)(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*+[0-~]?"
)


def _has_escapes(text: str) -> bool:
    return "\x1b" in text or "\x9b" in text


def _visible(text: str) -> str:
    """`text` as matched: escape sequences removed, the payload of string sequences kept."""
    return _ANSI.sub(lambda m: f" {m.group(1)} " if m.group(1) else "", text)


# A secret-named key of structured data: the rule of `name=value` (see _SECRET_WORD), and names
# whose last word is KEY (MODEL_KEY, SIGNING_KEY, encryptionKey), as environment variables and
# build args are named; `key` alone names a key (of a tag, a cache entry), it is not one.
_LAST_WORD_KEY = re.compile(r"[A-Za-z0-9]+[_.-](?i:keys?)|[A-Za-z0-9]*[a-z]Keys?")


def _secret_name(name: str) -> bool:
    if len(name) > _MAX_KEY:
        return False
    return _WHOLE_KEY.fullmatch(name) is not None or _LAST_WORD_KEY.fullmatch(name) is not None


def looks_like_secret(value: str) -> bool:
    """Whether `value` alone has a credential shape (a provider token, a URL with a password,
    a private key): what the redactor would mask without knowing the value."""
    return bool(value) and _mask_shapes(_mask_pem(value)) != value


# A variable named as a secret: its last word says so (OPENAI_API_KEY, JWT_SECRET, HF_TOKEN,
# DB_PASSWORD). Narrower than what output masks by name (MAX_TOKENS, AUTH_TOKEN_TTL too): masking
# a number in a log costs nothing, refusing a deploy or asking for a secret over one does.
# Public keys are public.
_SECRET_LAST_WORD = re.compile(r"(?:.*_)?(?:API)?(?:KEY|SECRET|TOKEN|PASSWORD|PASSWD|PASS)", re.I)
_PUBLIC_WORD = re.compile(r"(?:^|_)PUBLIC(?:_|$)", re.I)


def secret_variable(name: str) -> bool:
    """Whether an environment variable of this name is meant to hold a secret."""
    return _SECRET_LAST_WORD.fullmatch(name) is not None and _PUBLIC_WORD.search(name) is None


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
        """Mask known values and credential shapes in `text` (any number of lines), matched with
        terminal escape sequences removed (see _ANSI)."""
        if not text:
            return text
        if _has_escapes(text):
            plain = _visible(text)
            masked = self._redact(plain)
            if masked == plain:
                return text
            # Lines with nothing masked keep their colours (when masking kept the line count).
            old, new, ref = text.split("\n"), masked.split("\n"), plain.split("\n")
            if len(old) == len(new):
                return "\n".join(o if n == r else n for o, n, r in zip(old, new, ref, strict=True))
            return masked
        return self._redact(text)

    def _redact(self, text: str) -> str:
        if "\n" in text:
            # Private keys first: a key that starts inside a block must be masked whole, to its
            # END line, before the block masks its BEGIN line (and hides it from _mask_pem).
            text = _mask_blocks(_mask_pem(text))
        known = self._known
        if known is not None:
            text = known.sub(MASK, text)
        return _mask_shapes(text)

    def redact_data(self, data: Any) -> Any:
        """A copy of JSON-like data (dicts, lists, scalars) for `config`, `plan --json` and the
        reports, with secrets masked by key name and by value shape: every string goes through
        redact(); the value of a key that names a secret (API_KEY, DB_PASSWORD, MODEL_KEY: see
        _secret_name) and the `value` of a `{"name": …, "value": …}` pair (an ECS environment
        entry) whose name does become `***`, unless it is a setting or a reference (see _kept).
        The entries of a `secrets` mapping are references by definition (where a secret lives),
        so their names mask nothing."""
        return self._data(data, None, references=False)

    def _data(self, data: Any, key: str | None, *, references: bool) -> Any:
        if isinstance(data, dict):
            named = data.get("name")
            pair = isinstance(named, str) and "value" in data and _secret_name(named)
            out = {}
            for k, v in data.items():
                k_text = str(k)
                if pair and k_text == "value":
                    out[k] = self._masked(str(named), v)
                    continue
                out[k] = self._data(v, k_text, references=references or k_text == "secrets")
            return out
        if isinstance(data, list | tuple):
            return [self._data(v, key, references=references) for v in data]
        if key is not None and not references and _secret_name(key):
            return self._masked(key, data)
        return self.redact(data) if isinstance(data, str) else data

    def _masked(self, name: str, value: Any) -> Any:
        if isinstance(value, str):
            return value if not value or _kept(name, value) else MASK
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int | float):
            return value if "token" in name.lower() else MASK
        return self._data(value, name, references=False)

    def redact_known(self, text: str) -> str:
        """Mask only registered values: for structured data (image refs, digests) where the
        shape heuristics could mangle a legitimate value."""
        known = self._known
        return known.sub(MASK, text) if known is not None and text else text

    def stream(self) -> LineRedactor:
        """A per-stream line filter that also masks multi-line PEM private key blocks and the
        values a secret key gives on the lines below it."""
        return LineRedactor(self)


class LineRedactor:
    """Redacts one stream line by line, remembering whether it is inside a private key block or
    a secret key's block of values (see _Blocks). One per stream: the state is not shared."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._in_key = False
        self._blocks = _Blocks()

    def __call__(self, line: str) -> str:
        if _has_escapes(line):
            plain = _visible(line)
            masked = self._line(plain)
            return line if masked == plain else masked
        return self._line(line)

    def _line(self, line: str) -> str:
        if self._in_key:
            end = _PEM_END.search(line)
            if end is None:
                return MASK
            self._in_key = False
            return MASK + self._redactor.redact(line[end.end():])
        begin = _PEM_BEGIN.search(line) if "PRIVATE KEY" in line else None
        if begin is not None and _PEM_END.search(line, begin.end()) is None:
            # A key starts here and ends on a later line: masked from here to its END line,
            # whether or not this line is in a block (which then sees the key as `***`).
            self._in_key = True
            line = line[:begin.start()] + MASK
        masked = self._blocks.step(line)
        return self._redactor.redact(line if masked is None else masked)
