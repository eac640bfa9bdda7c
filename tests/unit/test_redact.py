"""Secrets never reach output: registered values and credential-shaped text become ***."""

from __future__ import annotations

import base64
import json
import random
import threading

import pytest

from deployctl.redact import MASK, Redactor


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", "AWS_ACCESS_KEY_ID=***"),
        ("temporary key ASIAY34FZKBOKMUTVV7A in use", "temporary key *** in use"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key = ***"),
        ('"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",', '"SecretAccessKey": "***",'),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "Authorization: Bearer ***"),
        ("curl -H 'Authorization: Basic dXNlcjpwYXNz' http://x", "curl -H 'Authorization: Basic ***' http://x"),
        ("OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwx", "OPENAI_API_KEY=***"),
        ("calling with sk-abcdefghijklmnopqrstuvwxyz123456 now", "calling with *** now"),
        ("password=hunter2 user=bob", "password=*** user=bob"),
        ("DB_PASSWORD: 'p@ss w0rd'", "DB_PASSWORD: '***'"),
        ('{"password": "a b c", "user": "x"}', '{"password": "***", "user": "x"}'),
        ("PASSWORD=1234567", "PASSWORD=***"),
        ("token=abc123&page=2", "token=***&page=2"),
        ("x=1;api_key=abcdef;y=2", "x=1;api_key=***;y=2"),
        ("export HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", "export HF_TOKEN=***"),
        ("gh auth ghp_abcdefghijklmnopqrstuvwxyz0123456789", "gh auth ***"),
        ("signing secret is 9f8e7d6c5b4a39281706f5e4d3c2b1a0aabbccdd", "signing secret is ***"),
        ("key: dGhpcyBpcyBhIHZlcnkgc2VjcmV0IGtleSB2YWx1ZQ==", "key: ***"),
        ("postgres://app:s3cretpw@db.internal:5432/app", "postgres://app:***@db.internal:5432/app"),
        ("docker login --password hunter22 registry", "docker login --password *** registry"),
        ("k=-----BEGIN RSA PRIVATE KEY-----MIIEow+abc-----END RSA PRIVATE KEY-----", "k=***"),
    ],
)
def test_credential_shapes_are_masked(line: str, expected: str) -> None:
    assert Redactor().redact(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "pushed registry.local/app@sha256:" + "a" * 64,
        "cache key for layer sha256:" + "b" * 64,
        "reading secrets from Secrets Manager",
        "secret_arn: arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf",
        "Step 3/10 : ARG API_KEY",
        "image tag: git-0123456789abcdef0123456789abcdef01234567",
        "commit 0123456789abcdef0123456789abcdef01234567",
        "max_tokens: 512, prompt_tokens=20",
        "use_token=true",
        "http://localhost:5000/v2/ returned 200",
        "keyboard interrupt; 42 tests passed",
    ],
)
def test_ordinary_output_is_left_alone(line: str) -> None:
    assert Redactor().redact(line) == line


def test_registered_value_never_appears() -> None:
    secret = "Zx9!q#w-pl0p"
    redactor = Redactor()
    redactor.add(secret)
    texts = [
        f"value={secret}",
        f"the value is {secret} ok",
        f"{secret}{secret}",
        f"url-encoded: {'Zx9%21q%23w-pl0p'}",
        f"prefix{secret}suffix",
    ]
    for text in texts:
        out = redactor.redact(text)
        assert secret not in out and "Zx9%21q%23w-pl0p" not in out, out
        assert MASK in out
    assert redactor.redact(f"the value is {secret} ok") == "the value is *** ok"


def test_longer_secret_is_masked_whole_even_if_it_contains_a_shorter_one() -> None:
    redactor = Redactor(["abcd", "abcdefgh-long"])
    assert redactor.redact("x abcdefgh-long y abcd z") == "x *** y *** z"


def test_multiline_registered_secret_is_masked_line_by_line() -> None:
    redactor = Redactor()
    redactor.add("first-line-of-secret\nsecond-line-of-secret")
    stream = redactor.stream()
    assert stream("got first-line-of-secret") == "got ***"
    assert stream("second-line-of-secret") == "***"


def test_very_short_values_are_not_registered() -> None:
    redactor = Redactor()
    redactor.add("abc")
    redactor.add("")
    redactor.add(None)
    assert redactor.redact("abc abc") == "abc abc"


def test_pem_block_across_lines_is_masked_in_a_stream() -> None:
    lines = [
        "before",
        "key: -----BEGIN OPENSSH PRIVATE KEY-----",
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ",
        "QyNTUxOQAAACB",
        "-----END OPENSSH PRIVATE KEY----- then password=x",
        "after",
    ]
    stream = Redactor().stream()
    assert [stream(line) for line in lines] == [
        "before", "key: ***", "***", "***", "*** then password=***", "after"
    ]


def test_pem_block_in_one_text_is_masked() -> None:
    text = "a\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\nb"
    assert Redactor().redact(text) == "a\n***\nb"


def test_add_is_thread_safe_while_redacting() -> None:
    redactor = Redactor()
    errors: list[BaseException] = []

    def add_many() -> None:
        for i in range(200):
            redactor.add(f"secret-value-{i:04d}")

    def redact_many() -> None:
        try:
            for _ in range(200):
                redactor.redact("secret-value-0001 and secret-value-0199")
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    threads = [threading.Thread(target=add_many), threading.Thread(target=redact_many)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert redactor.redact("secret-value-0001 and secret-value-0199") == "*** and ***"


def test_iam_action_names_stay_readable_but_secret_assignments_do_not() -> None:
    r = Redactor()
    assert r.redact("grant secretsmanager:GetSecretValue to the execution role") == \
        "grant secretsmanager:GetSecretValue to the execution role"
    assert r.redact("secret: Hunter2Pass") == "secret: ***"
    assert r.redact("password:Hunter2Pass") == "password:***"
    assert r.redact("password=Abcdef") == "password=***"


# --- the reviewer's gaps: short password words, lists, curl -u, whole key words ---------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("DB_PASS=s3cr3tpw", "DB_PASS=***"),
        ("REDIS_PASS: hunter22", "REDIS_PASS: ***"),
        ("export MYSQL_PWD=xyzzy1", "export MYSQL_PWD=***"),
        ("SMTP_PASSWD='a b c'", "SMTP_PASSWD='***'"),
        ("dbPass: foo1234", "dbPass: ***"),
        ("PGPASSWORD=abc123 psql -h db", "PGPASSWORD=*** psql -h db"),
        ("x-api-key: abcd1234", "x-api-key: ***"),
        ("clientSecret=abcd1234", "clientSecret=***"),
        ("SECRET_KEY_BASE=abc", "SECRET_KEY_BASE=***"),
        ("PASSWORD2=abc", "PASSWORD2=***"),
        ('passwords: ["a1b2c3d4"]', 'passwords: ["***"]'),
        ('"passwords": ["a1b2c3d4", "e5f6g7h8"],', '"passwords": ["***", "***"],'),
        ("api_tokens: [t0k3n-one, 'two two']", "api_tokens: [***, '***']"),
        ("secrets: [arn:aws:secretsmanager:us-east-1:1:secret:x, s3cr3t]",
         "secrets: [arn:aws:secretsmanager:us-east-1:1:secret:x, ***]"),
        ("curl -u ci:S3cretPassw0rd https://x/", "curl -u ci:*** https://x/"),
        ("curl --user 'ci:S3cret Pass' https://x", "curl --user 'ci:***' https://x"),
        ("curl --user=ci:S3cret https://x", "curl --user=ci:*** https://x"),
        ("wget --pass=abcd1234 https://x", "wget --pass=*** https://x"),
    ],
)
def test_more_credential_shapes_are_masked(line: str, expected: str) -> None:
    assert Redactor().redact(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        # A service named `tokenizer` is not a token: its deploy line keeps its URL.
        "tokenizer: http://127.0.0.1:18080",
        "tokenizer: http://tokenizer-service-abcdefghijklmnop.internal/v1",
        "tokenizer=ready",
        "loading tokenizer from /models/meta-llama-3-8b-instruct-tokenizer",
        "keyboard: abcdefghijklmnopqrstuvwxyz0123456789",
        "bypass: cache",
        "passenger_count: abc",
        "PASS: test_version",
        "PWD=/work/main",
        "passwords: []",
        "docker run -u 1000:1000 app",
        "git push -u origin main",
        "max_tokens: 512, maxTokens=512",
    ],
)
def test_words_that_only_contain_a_secret_word_are_left_alone(line: str) -> None:
    assert Redactor().redact(line) == line


def test_credentials_mask_the_base64_user_password_pair() -> None:
    """A docker config's `auth` (and HTTP Basic) is base64("user:password")."""
    user, secret = "ci-bot", "S3cretPassw0rd"
    auth = base64.b64encode(f"{user}:{secret}".encode()).decode()
    redactor = Redactor()
    redactor.add_credentials(user, secret)
    assert redactor.redact_known(f'{{"auths": {{"r:5001": {{"auth": "{auth}"}}}}}}') == \
        '{"auths": {"r:5001": {"auth": "***"}}}'
    assert redactor.redact_known(f"x {auth.rstrip('=')} y {secret} z") == "x *** y *** z"
    # Without a username only the secret itself is known.
    alone = Redactor()
    alone.add(secret)
    assert alone.redact_known(auth) == auth
    alone.add(secret, user=user)
    assert alone.redact_known(auth) == MASK


def test_registry_access_hands_the_username_with_the_secret() -> None:
    from deployctl.stages.access import ENV_PASSWORD, ENV_USER, RegistryAccess

    seen: list[tuple[str, str]] = []
    access = RegistryAccess("r:5001", env={ENV_USER: "ci", ENV_PASSWORD: "pw-from-env"},
                            on_credentials=lambda user, secret: seen.append((user, secret)))
    assert access.explicit() == ("ci", "pw-from-env") and seen == [("ci", "pw-from-env")]

    redactor = Redactor()
    access = RegistryAccess("r:5001", env={}, docker_config=lambda host: ("bob", "pw-from-login"),
                            on_credentials=redactor.add_credentials)
    assert access.credentials() == ("bob", "pw-from-login")
    auth = base64.b64encode(b"bob:pw-from-login").decode()
    assert redactor.redact_known(f"auth {auth} pw-from-login") == "auth *** ***"


# --- values on the lines below a secret key (YAML block lists, block scalars, nested maps) ----


def _streamed(text: str) -> str:
    stream = Redactor().stream()
    return "\n".join(stream(line) for line in text.split("\n"))


BLOCKS = [
    pytest.param(
        "password:\n  - hunter2-long-value\napi_keys:\n  - sk-abc123\n  - 'second key'\nstatus: ok",
        "password:\n  - ***\napi_keys:\n  - ***\n  - '***'\nstatus: ok",
        id="block-lists",
    ),
    pytest.param(
        "token: |\n  multi-line-secret\n\n  second: paragraph\nnext: visible",
        "token: |\n  ***\n\n  ***\nnext: visible",
        id="block-scalar-keeps-its-blank-lines",
    ),
    pytest.param(
        "- name: db\n  private_key: >-\n    abc def\n    ghi\n  user: app",
        "- name: db\n  private_key: >-\n    ***\n    ***\n  user: app",
        id="block-scalar-under-a-list-item",
    ),
    pytest.param(
        "credentials:\n  user: ci-bot\n  password: hunter2\n  port: 5432\n  enabled: true\n"
        "  ref: arn:aws:secretsmanager:us-east-1:1:secret:x\n  nested:\n    - x1y2z3\n  cert: |\n"
        "    line: one\n  list: [a1, 'b 2']\nregion: us-east-1",
        "credentials:\n  user: ***\n  password: ***\n  port: ***\n  enabled: true\n"
        "  ref: arn:aws:secretsmanager:us-east-1:1:secret:x\n  nested:\n    - ***\n  cert: |\n"
        "    ***\n  list: [***, '***']\nregion: us-east-1",
        id="nested-map-keeps-keys-and-settings",
    ),
    pytest.param(
        "items:\n  - token:\n      - t0k3n-value\n  - name: other\n    - not-in-the-block",
        "items:\n  - token:\n      - ***\n  - name: other\n    - not-in-the-block",
        id="list-item-key",
    ),
    pytest.param(
        # kubectl/yq style: the list sits at the key's own column.
        "DB_PASSWORD:\n- hunter2\n- \"other one\"\nimage: app:1",
        "DB_PASSWORD:\n- ***\n- \"***\"\nimage: app:1",
        id="list-at-the-key-column",
    ),
    pytest.param(
        '{\n  "api_keys": [\n    "sk-abc",\n    "def"\n  ],\n  "user": "x"\n}',
        '{\n  "api_keys": [\n    "***",\n    "***"\n  ],\n  "user": "x"\n}',
        id="pretty-printed-json-list",
    ),
    pytest.param(
        # `tokens:` is a secret word, but a count under it is a setting, as in `max_tokens: 512`.
        "tokens:\n  prompt: 20\n  completion: 512\n  cache: abcdef",
        "tokens:\n  prompt: 20\n  completion: 512\n  cache: ***",
        id="token-counts-stay-readable",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BLOCKS)
def test_values_below_a_secret_key_are_masked_in_a_stream(text: str, expected: str) -> None:
    assert _streamed(text) == expected


@pytest.mark.parametrize(("text", "expected"), BLOCKS)
def test_values_below_a_secret_key_are_masked_in_one_text(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


def test_a_secret_block_ends_at_the_first_line_back_at_the_key_column() -> None:
    # The ending line is an ordinary line again (masked by its own shape, or opening the next
    # block), and indented output after it is left alone.
    text = ("  password:\n    - abcd1234\n  token: t0k3n99\n  api_key:\n    - efgh5678\n"
            "  regular: line\n    indented detail\n")
    expected = ("  password:\n    - ***\n  token: ***\n  api_key:\n    - ***\n"
                "  regular: line\n    indented detail\n")
    assert _streamed(text) == expected
    assert Redactor().redact(text) == expected


def test_a_block_does_not_outlive_its_stream() -> None:
    redactor = Redactor()
    first = redactor.stream()
    assert first("password:") == "password:"
    # Another stage's output, read by its own stream, is not inside the first one's block.
    assert redactor.stream()("  - visible") == "  - visible"
    assert first("  - hidden") == "  - ***"


@pytest.mark.parametrize(
    "text",
    [
        # Keys that only contain a secret word open nothing.
        "tokenizer:\n  - bert-base-uncased\n  vocab: 30522\nbypass:\n  - cache-layer-one",
        "keyboard:\n  layout: us-intl-altgr",
        # A secret key with a value on its own line is that line's business only.
        "password: ***\n  - not-its-value\n",
        # Tracebacks and pytest reports are indented under lines that are no secret key.
        'Traceback (most recent call last):\n  File "/app/x.py", line 3, in <module>\n'
        "    client = connect(token)\nKeyError: 'token'",
        "____ test_login ____\n\n    def test_login():\n        login(password)\n>       assert ok\n"
        "E       assert False\n\ntests/test_x.py:12: AssertionError",
        # A secret word in a heading that is more than a key opens no block.
        "Secrets used by this service:\n  - MODEL_API_KEY",
        "Rotated tokens (3):\n  - api, worker, batch",
    ],
)
def test_indented_output_under_other_lines_is_left_alone(text: str) -> None:
    assert _streamed(text) == text
    assert Redactor().redact(text) == text


def test_block_headers_stay_readable_on_their_own_line() -> None:
    # `|` and `[` announce the value on the next lines; they are not the secret.
    assert Redactor().redact("token: |-") == "token: |-"
    assert Redactor().redact('"api_keys": [') == '"api_keys": ['


# --- long lines (minified JSON, base64 blobs, long generated names): masked like short ones -----
# Redaction is linear in the line's length (benchmarks/redact_throughput.py measures it); these
# tests pin the behaviour on such lines, not the time.


def _filler(kind: str, size: int) -> str:
    rng = random.Random(size)
    if kind == "json":
        items = (json.dumps({"id": i, "name": f"item-{i}", "sha": f"{rng.getrandbits(160):040x}",
                             "tags": ["a", "b"], "ok": True}, separators=(",", ":")) for i in range(size // 50))
        text = "[" + ",".join(items)
    elif kind == "base64":
        text = base64.b64encode(rng.randbytes(size)).decode("ascii")
    else:  # one long word-joined name: no spaces, words joined by `-` and `.`
        words = ("build", "cache", "layer", "wheel", "install", "resolve", "digest", "manifest", "x86", "64")
        text = "".join(rng.choice(words) + rng.choice("-.") for _ in range(size))
    return text[:size]


FILLERS = ("json", "base64", "joined")
# (secret as printed, how it is printed masked), each surrounded by spaces in the long line.
SECRETS = [
    ("password=hunter22-long", "password=***"),
    ("AKIAIOSFODNN7EXAMPLE", MASK),
    ("postgres://app:s3cretpw@db.internal:5432/app", "postgres://app:***@db.internal:5432/app"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "Authorization: Bearer ***"),
    ("registered-value-9x7", MASK),
]


@pytest.mark.parametrize("kind", FILLERS)
def test_a_long_line_without_secrets_comes_back_unchanged(kind: str) -> None:
    line = _filler(kind, 100_000)
    assert len(line) == 100_000
    assert Redactor(["registered-value-9x7"]).stream()(line) == line
    assert Redactor().redact(line) == line


@pytest.mark.parametrize("kind", FILLERS)
@pytest.mark.parametrize("where", ["start", "middle", "end"])
@pytest.mark.parametrize(("secret", "masked"), SECRETS)
def test_a_secret_anywhere_in_a_long_line_is_masked(kind: str, where: str, secret: str, masked: str) -> None:
    filler = _filler(kind, 20_000)
    at = {"start": 0, "middle": len(filler) // 2, "end": len(filler)}[where]
    line = f"{filler[:at]} {secret} {filler[at:]}"
    expected = f"{filler[:at]} {masked} {filler[at:]}"
    redactor = Redactor(["registered-value-9x7"])
    assert redactor.stream()(line) == expected
    assert redactor.redact(line) == expected


def test_url_credentials_after_a_long_run_of_scheme_characters() -> None:
    # The scheme is the whole run before `://` (digits, `+`, `.`, `-` and letters of either case).
    run = "1abc-9.def+" * 2_000
    assert Redactor().redact(f"see {run}://ci:S3cret@host/x") == f"see {run}://ci:***@host/x"
    assert Redactor().redact(f"{run}X://ci:S3cret@host/x") == f"{run}X://ci:***@host/x"
    assert Redactor().redact(f"{run}_://ci:S3cret@host/x") == f"{run}_://ci:S3cret@host/x"


def test_single_line_pem_key_after_begin_lines_without_an_end() -> None:
    line = ("a -----BEGIN RSA PRIVATE KEY----- b " * 500
            + "-----BEGIN PRIVATE KEY-----MIIEvQIBADANBg-----END PRIVATE KEY----- tail")
    assert Redactor().redact(line) == "a -----BEGIN RSA PRIVATE KEY----- b " * 500 + "*** tail"


def test_long_runs_of_spaces_in_a_secret_list_or_block() -> None:
    gap = " " * 20_000
    assert Redactor().redact(f"passwords: [a1{gap}b2, c3]") == "passwords: [***, ***]"
    stream = Redactor().stream()
    assert stream("password:") == "password:"
    assert stream(f"  - abc{gap}def") == "  - ***"
    assert stream(f"  note{gap}x: value") == f"  note{gap}x: ***"


# --- review of the block masking: keys inside blocks, header look-alikes, comments, next-line
# values, anchors and tags, references and names that are no secret -------------------------


def _both(text: str) -> tuple[str, str]:
    return _streamed(text), Redactor().redact(text)


def test_a_private_key_that_starts_inside_a_block_is_masked_to_its_end_line() -> None:
    text = ("credentials:\n  ssh_key: -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXkt...SECRETBODY\n"
            "-----END OPENSSH PRIVATE KEY-----\nname: x")
    streamed, whole = _both(text)
    assert streamed == "credentials:\n  ssh_key: ***\n***\n***\nname: x"
    # One text masks the key whole, BEGIN to END, as a key outside a block.
    assert whole == "credentials:\n  ssh_key: ***\nname: x"
    for out in (streamed, whole):
        assert "SECRETBODY" not in out and "END OPENSSH" not in out


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("DB_PASSWORD=>12345", "DB_PASSWORD=***"),
        ("DB_PASSWORD=|2024", "DB_PASSWORD=***"),
        ("password: >12345", "password: ***"),
        ("password: |9- trailing", "password: *** trailing"),
        ("password: |- and more", "password: *** and more"),
        ("passwords: [|, >]", "passwords: [***, ***]"),
    ],
)
def test_values_that_look_like_block_headers_are_masked(line: str, expected: str) -> None:
    # Only a real YAML header after `:`, ending the line, announces a block (and stays readable).
    assert Redactor().redact(line) == expected


@pytest.mark.parametrize("line", ["token: |2-", "password: >+", "private_key: !!binary |", "secret: |  # the key"])
def test_real_block_headers_ending_the_line_stay_readable(line: str) -> None:
    assert Redactor().redact(line) == line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password:\n  - a1b2\n# rotated\n  - hunter41", "password:\n  - ***\n# rotated\n  - ***"),
        ("token: |\n  line1\n# c\n  hunter49", "token: |\n  ***\n# c\n  ***"),
        ("  api_keys:\n    - k1\n  # old one removed\n    - hunter42\n  region: x",
         "  api_keys:\n    - ***\n  # old one removed\n    - ***\n  region: x"),
    ],
)
def test_a_comment_line_does_not_end_a_block(text: str, expected: str) -> None:
    assert _both(text) == (expected, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Your new API token:\nabcd1234efgh5678", "Your new API token:\n***"),
        ("DB_PASSWORD=\nhunter2abc", "DB_PASSWORD=\n***"),
        ("password:\nhunter77", "password:\n***"),
        ("password:\nhunter77 (rotated)", "password:\n*** (rotated)"),
        ('password:\n"hunter 77"', 'password:\n"***"'),
        ("password:\n\nhunter77\nnext line", "password:\n\n***\nnext line"),
    ],
)
def test_a_value_on_the_next_unindented_line_is_masked(text: str, expected: str) -> None:
    assert _both(text) == (expected, expected)


@pytest.mark.parametrize(
    "text",
    [
        # The next key of a mapping, a list item of its own, settings: no value of the key.
        "password:\nname: x",
        "ERROR: invalid token:\nTraceback (most recent call last):",
        "DB_PASSWORD=\n  indented detail",
        "use_token=\ntrue",
        "api_key:\narn:aws:secretsmanager:us-east-1:1:secret:x",
    ],
)
def test_the_next_line_is_left_alone_when_it_is_no_value(text: str) -> None:
    assert _both(text) == (text, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password: &pw\n  - hunter11", "password: &pw\n  - ***"),
        ("private_key: !!binary |\n  hunter55\nnext: 1", "private_key: !!binary |\n  ***\nnext: 1"),
        ("password: &pw hunter2", "password: &pw ***"),
        ("password: !!str hunter2", "password: !!str ***"),
        ('password: !!str "hunter 2"', 'password: !!str "***"'),
    ],
)
def test_anchors_and_tags_before_a_value_hide_nothing(text: str, expected: str) -> None:
    assert _both(text) == (expected, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "monitoring:\n  tokens:                       # a custom metric\n    namespace: ChatApi/LLM\n"
            "    metric: TokensPerRequest\n    dimensions: {Service: \"{service}\", Env: \"{env}\"}\n"
            "    hourly_cap: 3000000         # one runaway agent\n    service: api\n    cache: abcdef\n  queue: x",
            "monitoring:\n  tokens:                       # a custom metric\n    namespace: ChatApi/LLM\n"
            "    metric: TokensPerRequest\n    dimensions: {Service: \"{service}\", Env: \"{env}\"}\n"
            "    hourly_cap: 3000000         # one runaway agent\n    service: api\n    cache: ***\n  queue: x",
            id="token-metric-settings",
        ),
        pytest.param(
            "secrets:\n  DATABASE_URL: ssm:/chat-api/database-url     # SSM parameter\n"
            "  OPENAI_API_KEY: chat-api/openai-key          # Secrets Manager name\n"
            "  X: secretsmanager:chat/x\n  db_password:\n    file: ./db_password.txt",
            "secrets:\n  DATABASE_URL: ssm:/chat-api/database-url     # SSM parameter\n"
            "  OPENAI_API_KEY: ***          # Secrets Manager name\n"
            "  X: secretsmanager:chat/x\n  db_password:\n    file: ./db_password.txt",
            id="secret-references",
        ),
        pytest.param(
            '"secrets": [\n  {\n    "name": "DB_PASSWORD",\n    "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/db"\n'
            '  },\n  {"name": "API_KEY", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/api"}\n]',
            '"secrets": [\n  {\n    "name": "DB_PASSWORD",\n    "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/db"\n'
            '  },\n  {"name": "API_KEY", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/api"}\n]',
            id="ecs-task-definition",
        ),
        pytest.param(
            '{"secrets": [{"name": "DB_PASSWORD", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/db"}]}',
            '{"secrets": [{"name": "DB_PASSWORD", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/db"}]}',
            id="ecs-task-definition-one-line",
        ),
        pytest.param(
            "spec:\n  imagePullSecrets:\n  - name: regcred\n  containers:\n  - env:\n    - name: DB_PASSWORD\n"
            "      valueFrom:\n        secretKeyRef: {name: db-secret, key: password}\n"
            "    - name: X\n      valueFrom:\n        secretKeyRef:\n"
            "          name: db-secret\n          key: password",
            "spec:\n  imagePullSecrets:\n  - name: regcred\n  containers:\n  - env:\n    - name: DB_PASSWORD\n"
            "      valueFrom:\n        secretKeyRef: {name: db-secret, key: password}\n"
            "    - name: X\n      valueFrom:\n        secretKeyRef:\n"
            "          name: db-secret\n          key: password",
            id="kubernetes-secret-references",
        ),
        pytest.param(
            "jobs:\n  call:\n    uses: ./.github/workflows/deploy.yml\n    secrets: inherit",
            "jobs:\n  call:\n    uses: ./.github/workflows/deploy.yml\n    secrets: inherit",
            id="github-actions-inherit",
        ),
        pytest.param(
            # Still masked: a `key:` under api_keys, words under a password, a mapping's values.
            "api_keys:\n  - name: prod\n    key: abc123def\ncredentials: {user: ci, password: hunter2}\n"
            "tokens:\n  value: xKqPzLmNwR",
            "api_keys:\n  - name: prod\n    key: ***\ncredentials: {user: ***, password: ***}\n"
            "tokens:\n  value: ***",
            id="still-masked",
        ),
    ],
)
def test_names_references_and_settings_in_secret_blocks_stay_readable(text: str, expected: str) -> None:
    assert _both(text) == (expected, expected)


def test_a_deploy_yaml_shows_only_its_unprefixed_secret_names_masked() -> None:
    # Lines of deployctl's own deploy.yaml (services, monitoring, environments), through a stream.
    text = (
        "services:\n  api:\n    secrets:\n"
        "      OPENAI_API_KEY: chat-api/openai-key          # Secrets Manager name (or ARN)\n"
        "      DATABASE_URL: ssm:/chat-api/database-url     # SSM parameter\n"
        "    load_balancer: {target_group: chat-api-tg}\n"
        "  worker:\n    secrets: {OPENAI_API_KEY: chat-api/openai-key}\n"
        "monitoring:                     # `deployctl monitor apply --env prod`\n"
        "  tokens:                       # a custom metric the app publishes per request\n"
        "    namespace: ChatApi/LLM\n    metric: TokensPerRequest\n"
        '    dimensions: {Service: "{service}", Env: "{env}"}\n    max_per_request: 6000\n'
        "    hourly_cap: 3000000         # one runaway agent must not burn the month's API budget\n"
        "    service: api\n  queue: {name: chat-jobs, max_visible: 1000, service: worker}\n"
        "environments:\n  dev:\n    services:\n"
        "      api: {count: 1, secrets: null}     # null removes: dev runs without cloud secrets\n"
        "      worker: {secrets: null}"
    )
    stream = Redactor().stream()
    changed = [(line, out) for line in text.split("\n") if (out := stream(line)) != line]
    # Only the Secrets Manager names given without a prefix are masked (they could be values).
    assert changed == [
        ("      OPENAI_API_KEY: chat-api/openai-key          # Secrets Manager name (or ARN)",
         "      OPENAI_API_KEY: ***          # Secrets Manager name (or ARN)"),
        ("    secrets: {OPENAI_API_KEY: chat-api/openai-key}", "    secrets: {OPENAI_API_KEY: ***}"),
    ]


def test_a_secret_key_then_a_long_run_of_spaces_opens_no_block_and_returns() -> None:
    # Not a block opener (a value follows the spaces): decided in one pass over the spaces (the
    # opener pattern used to try every split of the run, seconds for 2,000 spaces).
    gap = " " * 20_000
    stream = Redactor().stream()
    assert stream(f"password:{gap}{{a: b}}") == f"password:{gap}{{a: ***}}"
    assert stream("  - visible") == "  - visible"
