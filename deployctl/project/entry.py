"""The framework, the ASGI/WSGI app object, the server that runs it and the port.

Sources, strongest first: a Procfile `web:` line, a server config file (gunicorn.conf.py,
hypercorn.toml), the app object found in the code with the server the dependencies name.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from deployctl.project.deps import Deps
from deployctl.project.files import is_test_path, read, rel, walk

_OBJECT = {
    "fastapi": re.compile(r"^(\w+)\s*(?::\s*\w+\s*)?=\s*FastAPI\(", re.M),
    "starlette": re.compile(r"^(\w+)\s*(?::\s*\w+\s*)?=\s*Starlette\(", re.M),
    "flask": re.compile(r"^(\w+)\s*(?::\s*\w+\s*)?=\s*Flask\(", re.M),
}
_FACTORY = re.compile(r"^def (create_app|make_app|app_factory)\(\s*\)", re.M)
ASGI = ("fastapi", "starlette", "django-asgi")
GUNICORN_CONFIGS = ("gunicorn.conf.py", "gunicorn_config.py", "gunicorn.config.py", "gunicorn_conf.py",
                    "config/gunicorn.py", "gunicorn.py")
HYPERCORN_CONFIGS = ("hypercorn.toml",)
_BIND = re.compile(r"^bind\s*=\s*(.+)$", re.M)
# A PORT read from the environment with a default: os.getenv("PORT", "3100"), os.environ.get('PORT', 3100)
_PORT_ENV_DEFAULT = re.compile(r"(?:getenv|environ\.get)\(\s*[\"']PORT[\"']\s*,\s*[\"']?(\d{2,5})")
_SHELL_PORT = re.compile(r"\$\{PORT:?-(\d{2,5})\}|\$\{PORT\}|\$PORT\b")
_WSGI_APP = re.compile(r"^wsgi_app\s*=\s*[\"']([^\"']+)[\"']", re.M)
_PORT_CALL = re.compile(r"\b(?:uvicorn\.run|\.run)\([^)]*\bport\s*=\s*(\d{2,5})")
_PORT_FLAG = re.compile(r"(?:--port[ =]|-p\s)(\d{2,5})|(?:--bind[ =]|-b\s)\S*:(\d{2,5})")


@dataclass(frozen=True)
class Entry:
    framework: str | None          # fastapi | starlette | flask | django | None
    app: str | None                # "module.path:object" (or "module:create_app()")
    import_root: str               # directory the module path is relative to ("." or "src")
    server: str | None             # uvicorn | gunicorn | hypercorn | flask | django | None
    server_config: str | None      # path of the server's config file, relative to the root
    start: tuple[str, ...] | None  # the command that starts the app in the image
    start_source: str              # where the command came from, for people
    port: int | None               # the port the command listens on, when known
    config_binds_port: bool = False
    port_source: str = ""          # where the port came from, when not start_source


def _module(relpath: str, import_root: str) -> str:
    p = relpath[len(import_root) + 1:] if import_root != "." else relpath
    p = p[:-3]
    if p.endswith("/__init__"):
        p = p[: -len("/__init__")]
    return p.replace("/", ".")


def _import_root(root: Path, relpath: str, app_dir: str) -> str:
    if relpath.startswith("src/") or (app_dir != "." and relpath.startswith(f"{app_dir}/src/")):
        return "src" if app_dir == "." else f"{app_dir}/src"
    return app_dir


def find_app(root: Path, app_dir: str) -> tuple[str | None, str | None, str, str | None]:
    """(framework, "module:object", import root, file) of the app object, preferring main/app modules."""
    found: list[tuple[int, str, str, str, str]] = []
    base = root / app_dir
    for path in walk(base):
        relpath = rel(root, path)
        if is_test_path(relpath):
            continue
        text = read(path)
        if path.name in ("wsgi.py", "asgi.py") and \
                ("get_wsgi_application()" in text or "get_asgi_application()" in text):
            iroot = Path(relpath).parent.parent.as_posix()
            found.append((2 if path.name == "wsgi.py" else 3, "django", f"{_module(relpath, iroot)}:application",
                          iroot, relpath))
            continue
        for fw, pattern in _OBJECT.items():
            m = pattern.search(text)
            if m:
                iroot = _import_root(root, relpath, app_dir)
                rank = 0 if path.stem in ("main", "app", "server", "api", "asgi", "wsgi") else 1
                found.append((rank, fw, f"{_module(relpath, iroot)}:{m.group(1)}", iroot, relpath))
                break
        else:
            m = _FACTORY.search(text)
            if m and "Flask(" in text:
                iroot = _import_root(root, relpath, app_dir)
                found.append((1, "flask", f"{_module(relpath, iroot)}:{m.group(1)}()", iroot, relpath))
    if not found:
        return None, None, app_dir, None
    found.sort(key=lambda f: (f[0], f[4].count("/"), f[4]))
    _, fw, app, iroot, relpath = found[0]
    return fw, app, iroot, relpath


def procfile_web(root: Path, app_dir: str) -> str | None:
    for line in read(root / app_dir / "Procfile").splitlines():
        if line.startswith("web:"):
            return line[4:].strip()
    return None


def config_bind(text: str) -> tuple[int | None, bool]:
    """(port, binds every interface) of a gunicorn config file's `bind`: a literal address, an
    f-string or concatenation around os.getenv("PORT", "3100") (its default counts)."""
    m = _BIND.search(text)
    if not m:
        return None, False
    value = m.group(1)
    literal = re.search(r":(\d{2,5})\b", value)
    env_default = _PORT_ENV_DEFAULT.search(value) or _PORT_ENV_DEFAULT.search(text)
    port = int(literal.group(1)) if literal else int(env_default.group(1)) if env_default else None
    return port, "0.0.0.0" in value or "[::]" in value


def flag_value(words: list[str] | tuple[str, ...], *names: str) -> str | None:
    """The value of a command-line flag given as `-c x`, `--config x` or `--config=x`."""
    for i, w in enumerate(words):
        for name in names:
            if w == name and i + 1 < len(words):
                return words[i + 1]
            if name.startswith("--") and w.startswith(name + "="):
                return w.split("=", 1)[1]
    return None


def gunicorn_config(root: Path, base: Path, words: list[str] | tuple[str, ...]) -> str | None:
    """The config file a gunicorn command reads, relative to the root: `-c/--config` as given
    (relative to where it starts; then to its --chdir), else ./gunicorn.conf.py, gunicorn's default."""
    given = flag_value(words, "-c", "--config")
    chdir = flag_value(words, "--chdir")
    if given and given.startswith("python:"):
        return None
    candidates = [given] if given else ["gunicorn.conf.py"]
    if chdir and given:
        candidates.append(f"{chdir}/{given}")
    for c in candidates:
        path = (base / c).resolve()
        if path.is_file() and path.is_relative_to(root):
            return rel(root, path)
    return None


def port_in(text: str) -> int | None:
    m = _PORT_FLAG.search(text) or _PORT_CALL.search(text)
    if not m:
        return None
    return int(next(g for g in m.groups() if g))


def detect(root: Path, app_dir: str, deps: Deps, port: int | None = None) -> Entry:
    """How the app starts. `port`: a port the user chose, which the command then uses."""
    framework, app, iroot, app_file = find_app(root, app_dir)
    base = root / app_dir

    web = procfile_web(root, app_dir)
    if web:
        # $PORT as a platform sets it: the user's port, else the command's own default (${PORT:-5000})
        default = next((int(m.group(1)) for m in _SHELL_PORT.finditer(web) if m.group(1)), None)
        expanded = _SHELL_PORT.sub(str(port or default or 8000), web)
        words = shlex.split(expanded)
        server = next((s for s in ("gunicorn", "uvicorn", "hypercorn") if s in words[:3]), None)
        flag_port = port_in(expanded)
        conf = gunicorn_config(root, base, words) if server == "gunicorn" else None
        conf_port, conf_all = config_bind(read(root / conf)) if conf else (None, False)
        use = port or flag_port or conf_port or default or 8000
        source = ("Procfile" if flag_port or default or not conf_port
                  else f"Procfile: bind in {conf}")
        if server == "gunicorn" and not flag_port and not (conf_all and conf_port == use):
            # the container must listen on every interface; a CLI --bind overrides the file's
            words.extend(["--bind", f"0.0.0.0:{use}"])
        return Entry(framework, app, iroot, server, conf, tuple(words), "Procfile", use,
                     config_binds_port=conf_port is not None, port_source=source)

    gconf = next((f"{d}/{name}".lstrip("./") for d in (".", "src", "config", "deploy") for name in GUNICORN_CONFIGS
                  if (base / d / name).is_file()), None)
    if gconf and deps.has("gunicorn"):
        gpath = f"{app_dir}/{gconf}" if app_dir != "." else gconf
        text = read(root / gpath)
        conf_port, conf_all = config_bind(text)
        wsgi = _WSGI_APP.search(text)
        use = port or conf_port or 8000
        argv = ["gunicorn", "-c", gconf]
        if framework in ASGI and "worker_class" not in text:
            argv += ["-k", "uvicorn.workers.UvicornWorker"]
        # The container must listen on every interface; a CLI --bind overrides the file's.
        if not (conf_all and conf_port == use):
            argv += ["--bind", f"0.0.0.0:{use}"]
        if not wsgi and app:
            argv.append(app)
        return Entry(framework, app, iroot, "gunicorn", gpath, tuple(argv), gconf, use,
                     config_binds_port=conf_port is not None)

    hconf = next((n for n in HYPERCORN_CONFIGS if (base / n).is_file()), None)
    code_port = port_in(read(root / app_file)) if app_file else None
    use = port or code_port or 8000
    if framework is None or app is None:
        return Entry(None, None, iroot, None, None, None, "not found", port or code_port)
    if framework == "django":
        if deps.has("gunicorn"):
            return Entry(framework, app, iroot, "gunicorn", None,
                         ("gunicorn", "--bind", f"0.0.0.0:{use}", app), "Django wsgi.py + gunicorn", use)
        if deps.has("uvicorn"):
            asgi = app.replace(".wsgi:", ".asgi:")
            return Entry(framework, asgi, iroot, "uvicorn", None,
                         ("uvicorn", asgi, "--host", "0.0.0.0", "--port", str(use)), "Django + uvicorn", use)
        manage = "manage.py" if iroot == "." else f"{iroot}/manage.py"
        return Entry(framework, app, iroot, "django", None,
                     ("python", manage, "runserver", "--noreload", f"0.0.0.0:{use}"),
                     "Django runserver (no gunicorn in the dependencies)", use)
    if framework in ASGI:
        if hconf and deps.has("hypercorn"):
            return Entry(framework, app, iroot, "hypercorn", hconf,
                         ("hypercorn", "--config", hconf, "--bind", f"0.0.0.0:{use}", app), hconf, use)
        if deps.has("gunicorn"):
            return Entry(framework, app, iroot, "gunicorn", None,
                         ("gunicorn", "-k", "uvicorn.workers.UvicornWorker", "--bind", f"0.0.0.0:{use}", app),
                         "gunicorn with uvicorn workers", use)
        if deps.has("hypercorn") and not deps.has("uvicorn"):
            return Entry(framework, app, iroot, "hypercorn", None,
                         ("hypercorn", "--bind", f"0.0.0.0:{use}", app), "hypercorn", use)
        return Entry(framework, app, iroot, "uvicorn", None,
                     ("uvicorn", app, "--host", "0.0.0.0", "--port", str(use)), "uvicorn", use)
    # flask: gunicorn when the project has it, else Flask's own server
    if deps.has("gunicorn"):
        return Entry(framework, app, iroot, "gunicorn", None,
                     ("gunicorn", "--bind", f"0.0.0.0:{use}", app), "gunicorn", use)
    return Entry(framework, app, iroot, "flask", None,
                 ("flask", "--app", app, "run", "--host", "0.0.0.0", "--port", str(use)),
                 "flask run (no gunicorn in the dependencies)", use)
