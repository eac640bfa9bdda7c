"""The build context: which files it holds, their combined hash, and the tar sent to dockerd.

deployctl makes the context tar itself instead of letting the docker SDK walk the directory,
so that three things are computed from one list and cannot disagree: the secret-file check
(what we refuse to ship), the `deployctl.inputs` hash (what the skip path compares), and the
bytes the daemon receives.

`.dockerignore` is applied exactly as the docker CLI applies it (see dockerignore.py); like
the CLI, the Dockerfile and .dockerignore are sent even when listed in it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from deployctl.errors import StageFailed
from deployctl.stages import dockerignore

INPUTS_LABEL = "deployctl.inputs"
INPUTS_VERSION = "deployctl.inputs/v1"
# Spool the tar in memory up to this size, then on disk: model weights can be gigabytes.
_SPOOL_BYTES = 64 * 1024 * 1024
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Entry:
    path: str  # relative, "/"-separated
    kind: str  # "f" file, "d" directory, "l" symlink
    mode: int  # permission bits
    size: int = 0
    link: str = ""


@dataclass(frozen=True)
class BuildContext:
    root: Path
    entries: tuple[Entry, ...]
    dockerfile: Path  # absolute
    dockerfile_name: str  # the name the daemon is told (inside the tar)

    @property
    def files(self) -> list[str]:
        return [e.path for e in self.entries if e.kind != "d"]


# --- listing --------------------------------------------------------------------------------


def load(context_dir: Path, dockerfile: str) -> BuildContext:
    """List the context after .dockerignore. Raises StageFailed for a missing context/Dockerfile."""
    root = context_dir.resolve()
    if not root.is_dir():
        raise StageFailed(f"the build context {context_dir} does not exist or is not a directory",
                          hint="image.context in deploy.yaml is relative to deploy.yaml's directory")
    df_path = (root / dockerfile).resolve()
    if not df_path.is_file():
        raise StageFailed(f"no Dockerfile at {df_path}",
                          hint="image.dockerfile in deploy.yaml is relative to image.context")
    ignore_file = root / ".dockerignore"
    patterns = dockerignore.parse(ignore_file.read_text(errors="replace")) if ignore_file.is_file() else []
    try:
        df_rel = df_path.relative_to(root).as_posix()
    except ValueError:
        df_rel = None
    # The docker CLI appends `!.dockerignore` and `!<Dockerfile>` when they would be excluded.
    probe = dockerignore.Matcher(patterns)
    for keep in (".dockerignore", df_rel):
        if keep is not None and probe.ignored(keep):
            patterns.append(dockerignore.extra_exception(keep))
    matcher = dockerignore.Matcher(patterns)

    def unreadable_dir(exc: OSError) -> None:
        # os.walk would otherwise skip the directory silently: the image would then lack it
        # without a word, while `docker build` itself refuses such a context.
        raise unreadable(root, Path(exc.filename or root), exc) from None

    entries: list[Entry] = []
    # Each walked directory's per-pattern results, handed to its entries (see dockerignore.Matcher).
    infos: dict[str, dockerignore.ParentInfo] = {}
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable_dir, followlinks=False):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        parent = infos.pop(rel_dir, None)
        keep_dirs = []
        for name in sorted(dirnames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            full = os.path.join(dirpath, name)
            if os.path.islink(full):  # os.walk lists symlinks to dirs as dirs
                filenames.append(name)
                continue
            excluded, infos[rel] = matcher.evaluate(rel, parent)
            if excluded:
                # Skipped whole unless a `!` line starts with its path (as the docker CLI does);
                # walked into, the directory itself is not sent, only what is re-included.
                if matcher.may_reinclude_below(rel):
                    keep_dirs.append(name)
                continue
            entries.append(Entry(rel, "d", stat.S_IMODE(os.lstat(full).st_mode)))
            keep_dirs.append(name)
        dirnames[:] = keep_dirs
        for name in sorted(filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if matcher.evaluate(rel, parent)[0]:
                continue
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                entries.append(Entry(rel, "l", 0o777, link=os.readlink(full)))
            elif stat.S_ISREG(st.st_mode):
                entries.append(Entry(rel, "f", stat.S_IMODE(st.st_mode), st.st_size))
            # sockets, fifos, devices: docker skips them too
    entries.sort(key=lambda e: e.path)
    # A Dockerfile outside the context travels in the tar under a name of its own.
    outside = f".dockerfile.{hashlib.sha256(str(df_path).encode()).hexdigest()[:12]}"
    return BuildContext(root, tuple(entries), df_path, df_rel or outside)


# --- inputs hash ----------------------------------------------------------------------------


def inputs_hash(
    ctx: BuildContext,
    *,
    target: str | None,
    build_args: dict[str, str],
    platform: str,
    cache: HashCache | None = None,
) -> str:
    """sha256 over everything that decides the image: context contents, the Dockerfile, the
    target, build args and platform. Not the git commit (it is in the tag already) and not
    `.git/` (git rewrites its own bookkeeping, e.g. the index, on a mere `git status`)."""
    h = hashlib.sha256(INPUTS_VERSION.encode() + b"\n")
    for e in ctx.entries:
        if e.path == ".git" or e.path.startswith(".git/"):
            continue
        if e.kind == "f":
            try:
                content = _file_hash(ctx.root / e.path, cache)
            except OSError as exc:
                raise unreadable(ctx.root, ctx.root / e.path, exc) from None
        elif e.kind == "l":
            content = e.link
        else:
            content = ""
        h.update(json.dumps([e.kind, e.mode & 0o111 != 0, e.path, content]).encode() + b"\n")
    try:
        dockerfile_sha256 = _file_hash(ctx.dockerfile, cache)
    except OSError as exc:
        raise unreadable(ctx.root, ctx.dockerfile, exc) from None
    h.update(json.dumps({
        "dockerfile": ctx.dockerfile_name,
        "dockerfile_sha256": dockerfile_sha256,
        "target": target,
        "build_args": dict(sorted(build_args.items())),
        "platform": platform,
    }).encode())
    return "sha256:" + h.hexdigest()


def unreadable(root: Path, path: Path, exc: OSError) -> StageFailed:
    """A file or directory of the context that cannot be read (a database directory owned by
    another user, typically): name it, and the way to leave it out."""
    try:
        rel = path.relative_to(root).as_posix()
    except ValueError:
        rel = str(path)
    top = rel.split("/", 1)[0]
    example = f"{top}/" if "/" in rel or path.is_dir() else rel
    why = exc.strerror.lower() if exc.strerror else type(exc).__name__
    return StageFailed(
        f"cannot read {rel} in the build context {root}: {why}",
        hint=f"everything in the context is sent to the Docker daemon; if the image does not need it, "
             f"add it to {root.name}/.dockerignore (e.g. `{example}`), else make it readable",
    )


def _file_hash(path: Path, cache: HashCache | None) -> str:
    st = path.stat()
    if cache is not None:
        hit = cache.get(path, st)
        if hit:
            return hit
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    value = digest.hexdigest()
    if cache is not None:
        cache.put(path, st, value)
    return value


class HashCache:
    """File hashes keyed by (inode, size, mtime, ctime): what lets an unchanged multi-gigabyte
    context be re-checked with stat() calls alone, the way git's index does.

    Kept outside the project (a file inside would dirty the git tree and change the context).
    Entries whose ctime is within two seconds of now are not stored: a file written again in
    the same timestamp tick would otherwise keep its stale hash ("racy git"). Losing the file
    only costs a re-hash.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data: dict[str, list[object]] = {}
        self._dirty = False
        try:
            loaded = json.loads(path.read_text())
            if isinstance(loaded, dict):
                self._data = loaded
        except (OSError, ValueError):
            pass

    @classmethod
    def for_context(cls, root: Path) -> HashCache:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deployctl"
        key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
        return cls(base / f"context-hashes-{key}.json")

    @staticmethod
    def _key(st: os.stat_result) -> list[object]:
        return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]

    def get(self, path: Path, st: os.stat_result) -> str | None:
        entry = self._data.get(str(path))
        if entry and entry[:4] == self._key(st):
            return str(entry[4])
        return None

    def put(self, path: Path, st: os.stat_result, value: str) -> None:
        if time.time_ns() - st.st_ctime_ns < 2_000_000_000:
            return
        self._data[str(path)] = [*self._key(st), value]
        self._dirty = True

    def save(self, keep: Iterable[Path] | None = None) -> None:
        """Write back, dropping entries for files no longer in the context."""
        if keep is not None:
            wanted = {str(p) for p in keep}
            stale = set(self._data) - wanted
            for k in stale:
                del self._data[k]
            self._dirty = self._dirty or bool(stale)
        if not self._dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-")
            with os.fdopen(fd, "w") as fh:
                json.dump(self._data, fh)
            os.replace(tmp, self.path)
        except OSError:
            pass  # a cache that cannot be written is just a slower next run


# --- tar ------------------------------------------------------------------------------------


def make_tar(ctx: BuildContext) -> IO[bytes]:
    """The context as an uncompressed tar (rewound), the way the docker CLI sends it:
    owner root, permissions and mtimes kept, Dockerfile added when it lives outside."""
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 - returned open
    with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in ctx.entries:
            full = ctx.root / e.path
            info = tarfile.TarInfo(e.path)
            st = os.lstat(full)
            info.mtime = int(st.st_mtime)
            info.mode = e.mode
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if e.kind == "d":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif e.kind == "l":
                info.type = tarfile.SYMTYPE
                info.linkname = e.link
                tar.addfile(info)
            else:
                info.size = st.st_size
                try:
                    fh = open(full, "rb")  # noqa: SIM115 - closed right below
                except OSError as exc:
                    spool.close()
                    raise unreadable(ctx.root, full, exc) from None
                with fh:
                    tar.addfile(info, fh)
        if ctx.dockerfile_name not in {e.path for e in ctx.entries}:
            data = ctx.dockerfile.read_bytes()
            info = tarfile.TarInfo(ctx.dockerfile_name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    spool.seek(0)
    return spool
