"""HTTP routes the app declares (FastAPI/Starlette/Flask decorators, Django urls), and which of
them is a readiness or health check."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

_DECORATED = re.compile(r"@\s*\w+(?:\.\w+)*\.(?:get|route|api_route|head)\(\s*[\"']([^\"']*)[\"']")
_STARLETTE = re.compile(r"\bRoute\(\s*[\"'](/[^\"']*)[\"']")
_DJANGO = re.compile(r"\b(?:re_)?path\(\s*r?[\"']\^?([^\"'$]*)\$?[\"']")
# Most specific first: a readiness route says more than a liveness one.
PREFERENCE = (
    re.compile(r"ready|readiness"),
    re.compile(r"^/?(api/)?(v\d+/)?health(z|check)?/?$"),
    re.compile(r"health"),
    re.compile(r"live|liveness|ping|status"),
)


def routes(source: str, *, decorated: bool = True) -> list[str]:
    """GET routes declared in one module's source (`decorated=False`: Starlette and Django only)."""
    out = [m.group(1) for m in _DECORATED.finditer(source)] if decorated else []
    out += [m.group(1) for m in _STARLETTE.finditer(source)]
    if "urlpatterns" in source:
        out += ["/" + m.group(1).lstrip("/") for m in _DJANGO.finditer(source)]
    return [r if r.startswith("/") else "/" + r for r in out if "{" not in r and "<" not in r]


def health_route(all_routes: list[str]) -> str | None:
    """The route a health check should request, None when the app declares none."""
    for pattern in PREFERENCE:
        hits = [r for r in all_routes if pattern.search(r.lower())]
        if hits:
            return min(hits, key=len)
    return None


# --- router prefixes across modules -----------------------------------------------------------
# `APIRouter(prefix="/api")` + `@router.get("/healthcheck")` serves /api/healthcheck, and
# `app.include_router(router, prefix="/v1")` adds another prefix (Flask: Blueprint url_prefix,
# register_blueprint). Read with `ast`, per module, then joined through the imports.

_ROUTER_CALLS = {"APIRouter": "prefix", "Blueprint": "url_prefix", "FastAPI": None, "Flask": None,
                 "Starlette": None}
_INCLUDES = {"include_router": "prefix", "register_blueprint": "url_prefix"}
_VERBS = {"get", "route", "api_route", "head"}


@dataclass
class _Module:
    name: str                                   # dotted, from the file path ("src.chat.main")
    routers: dict[str, str] = field(default_factory=dict)          # variable → its own prefix
    decorated: list[tuple[str, str]] = field(default_factory=list)  # (variable, path)
    # (owner, included expr, prefix, the prefix replaces the included one's own: Flask's url_prefix)
    includes: list[tuple[str, str, str, bool]] = field(default_factory=list)
    imports: dict[str, str] = field(default_factory=dict)          # local name → dotted target


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def _keyword(call: ast.Call, name: str | None) -> str:
    for kw in call.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
            return kw.value.value
    return ""


def _first_str(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    value = _keyword(call, "path") or _keyword(call, "rule")
    return value or None


def _read_module(name: str, source: str) -> _Module | None:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    mod = _Module(name)
    package = name.rsplit(".", 1)[0] if "." in name else ""
    if name.endswith(".__init__"):
        mod.name = package = name[: -len(".__init__")]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                mod.imports[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join([*parts, *([base] if base else [])])
            for a in node.names:
                mod.imports[a.asname or a.name] = f"{base}.{a.name}" if base else a.name
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Call):
            kind = (_dotted(node.value.func) or "").rsplit(".", 1)[-1]
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if kind in _ROUTER_CALLS:
                prefix_key = _ROUTER_CALLS[kind]
                prefix = _keyword(node.value, prefix_key) if prefix_key else ""
                for t in targets:
                    if isinstance(t, ast.Name):
                        mod.routers[t.id] = prefix
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute) and dec.func.attr in _VERBS:
                    owner, path = _dotted(dec.func.value), _first_str(dec)
                    if owner and path is not None:
                        mod.decorated.append((owner, path))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _INCLUDES:
            owner = _dotted(node.func.value)
            included = _dotted(node.args[0]) if node.args else None
            if owner and included:
                prefix = _keyword(node, _INCLUDES[node.func.attr])
                mod.includes.append((owner, included, prefix, node.func.attr == "register_blueprint" and bool(prefix)))
    return mod


def _join(*parts: str) -> str:
    out = "/".join(p.strip("/") for p in parts if p.strip("/"))
    trailing = "/" if out and parts and parts[-1].endswith("/") else ""
    return "/" + out + trailing if out else "/"


def project_routes(modules: dict[str, str]) -> list[str]:
    """Every GET route of the project, with the prefixes of its routers and of the
    include_router/register_blueprint calls that mount them. `modules`: dotted name → source."""
    read_mods: dict[str, _Module] = {}
    out: list[str] = []
    for name, src in modules.items():
        parsed = _read_module(name, src)
        if parsed is None:
            out += routes(src)  # not Python this version parses: the plain patterns
        else:
            read_mods[parsed.name] = parsed
            out += routes(src, decorated=False)

    def resolve(mod: _Module, expr: str) -> tuple[str, str] | None:
        """(module, variable) a name or dotted expression in `mod` refers to."""
        head, _, rest = expr.partition(".")
        if not rest and head in mod.routers:
            return mod.name, head
        target = mod.imports.get(head)
        if target is None:
            return None
        full = f"{target}.{rest}" if rest else target
        module, _, var = full.rpartition(".")
        for name in read_mods:
            if name == module or name.endswith("." + module):
                return name, var
        return None

    parents: dict[tuple[str, str], list[tuple[tuple[str, str], str, bool]]] = {}
    for mod in read_mods.values():
        for owner, included, prefix, replaces in mod.includes:
            o, c = resolve(mod, owner), resolve(mod, included)
            if o and c:
                parents.setdefault(c, []).append((o, prefix, replaces))

    def prefixes(key: tuple[str, str], depth: int = 0) -> list[str]:
        own = read_mods[key[0]].routers.get(key[1], "") if key[0] in read_mods else ""
        ups = parents.get(key)
        if not ups or depth > 8:
            return [_join(own)]
        return [_join(up, via, "" if replaces else own)
                for parent, via, replaces in ups for up in prefixes(parent, depth + 1)]

    for mod in read_mods.values():
        for owner, path in mod.decorated:
            key = resolve(mod, owner) or (mod.name, owner)
            out += [_join(prefix, path) for prefix in prefixes(key)]
    return [r for r in dict.fromkeys(out) if "{" not in r and "<" not in r]
