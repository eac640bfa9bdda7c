"""Plain `env:` values of ECS services that are secrets are refused (config/plain_secrets.py);
everyday settings of AI services that merely mention tokens or keys are not."""

from __future__ import annotations

import pytest

from deployctl.config import plain_secrets


@pytest.mark.parametrize(("name", "value"), [
    ("OPENAI_API_KEY", "sk-placeholder"), ("HF_TOKEN", "abc"), ("DB_PASSWORD", "hunter2"),
    ("JWT_SECRET", "change-me"), ("SECRET_KEY", "django-insecure"), ("APIKEY", "x1"),
    ("DATABASE_URL", "postgres://app:s3cretpass@db.internal:5432/app"),
    ("SLACK_BOT", "xoxb-123456789012-123456789012-abcdefghijklmnopqrstuvwx"),
])
def test_secrets_in_plain_env_are_found(name: str, value: str) -> None:
    assert [n for n, _ in plain_secrets.found({name: value})] == [name]


@pytest.mark.parametrize(("name", "value"), [
    ("MAX_TOKENS", "1024"), ("MAX_TOKENS", "many"), ("AUTH_TOKEN_TTL", "3600"),
    ("PASSWORD_MIN_LENGTH", "12"), ("TOKEN_LIMIT", "8k"), ("API_KEY_HEADER", "X-Api-Key"),
    ("NEXT_PUBLIC_API_KEY", "pk_live_public"), ("PUBLIC_KEY", "ssh-ed25519 AAAA"),
    ("CACHE_KEY", "2"), ("USE_API_KEY", "true"), ("DATABASE_URL", "postgres://db.internal:5432/app"),
    ("MODEL_NAME", "meta-llama/Llama-3.1-8B-Instruct"), ("LOG_LEVEL", "info"), ("OPENAI_API_KEY", ""),
])
def test_ordinary_settings_are_not(name: str, value: str) -> None:
    assert plain_secrets.found({name: value}) == []
