"""No image removal in the product, the tests or the scripts prunes untagged parents.

The engine's build cache is shared: two builds of the same steps (a test on another worker, a
CI job beside ours) reuse the same intermediate images, and a `--no-cache` build's layers become
cache for the next one. Removing an image with its untagged parents can delete a layer another
build is copying from right now, which fails that build with "unable to find image". So every
removal keeps the parents: `noprune=True` in the docker SDK, `--no-prune` on the CLI.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = [ROOT / "deployctl", ROOT / "tests", ROOT / "scripts", ROOT / ".ci"]

# A removal call up to its closing parenthesis (one level of nesting is enough here).
SDK_REMOVE = re.compile(r"(?:images\.remove|\.remove_image)\((?:[^()]|\([^()]*\))*\)", re.S)
# `docker rmi …` / `docker image rm …` on one shell line, or as a Python argv list.
CLI_REMOVE = re.compile(r"""\brmi\b|\bimage["',\s]+rm\b""")


def offenders(text: str) -> list[str]:
    found = [m.group(0) for m in SDK_REMOVE.finditer(text) if "noprune=True" not in m.group(0)]
    found += [line.strip() for line in text.splitlines()
              if "docker" in line and CLI_REMOVE.search(line) and "--no-prune" not in line
              and not line.lstrip().startswith("#")]
    return found


def scanned_files() -> list[Path]:
    files: list[Path] = []
    for base in SCANNED:
        paths = [base] if base.is_file() else base.rglob("*")
        files += [p for p in paths if p.is_file() and "__pycache__" not in p.parts
                  and (p.suffix in {".py", ".sh"} or p.parent.name in {"scripts", ".ci"})]
    return files


def test_the_rule_flags_removals_that_prune_and_passes_those_that_do_not() -> None:
    assert offenders('client.images.remove(ref, force=True)')
    assert offenders('client.api.remove_image(ref, force=True, noprune=False)')
    assert offenders('  docker rmi -f "$image" >/dev/null')
    assert offenders('run("docker", "rmi", "-f", tag, check=False)')
    assert not offenders('client.images.remove(ref, force=True, noprune=True)')
    assert not offenders('client.images.remove(\n    name(x), noprune=True)')
    assert not offenders('  docker rmi -f --no-prune "$image"')
    assert not offenders('run("docker", "rmi", "-f", "--no-prune", tag)')


def test_no_image_removal_in_the_repository_prunes_parents() -> None:
    this = Path(__file__).resolve()
    found = {str(p.relative_to(ROOT)): hits for p in scanned_files() if p.resolve() != this
             if (hits := offenders(p.read_text(encoding="utf-8", errors="replace")))}
    assert found == {}, found
