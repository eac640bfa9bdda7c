"""The image check passes what every Debian-based image carries (public keyrings, man pages,
programs) and still refuses secrets next to them: before, `FROM python:3.11-slim` alone was
refused for /usr/share/keyrings/*.gpg, /usr/share/man/man1/env.1.gz and /usr/bin/apt-key."""

from __future__ import annotations

from deployctl.stages.image_check import layer_findings

DEBIAN_BASE = [
    (1, "usr/share/keyrings/debian-archive-keyring.gpg", b""),
    (1, "etc/apt/trusted.gpg.d/debian-archive-bookworm-stable.gpg", b""),
    (1, "usr/share/man/man1/env.1.gz", b""),
    (1, "usr/bin/apt-key", b""),
]


def test_a_debian_base_image_is_not_a_secret() -> None:
    assert layer_findings(DEBIAN_BASE, []) == []


def test_secrets_beside_it_are_still_found() -> None:
    found = layer_findings([*DEBIAN_BASE, (3, "app/.env", b""), (3, "root/.ssh/id_rsa", b""),
                            (3, "usr/share/keyrings/leak.pem",
                             b"-----BEGIN RSA PRIVATE KEY-----\n" + b"A" * 80 + b"\n")], [])
    assert [f.split(" (")[0] for f in found] == ["layer 3, /app/.env", "layer 3, /root/.ssh/id_rsa",
                                                 "layer 3, /usr/share/keyrings/leak.pem"]
