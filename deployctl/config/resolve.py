"""Load deploy.yaml: parse, interpolate, overlay one environment, validate, locate every problem.

Merge rule for environment overlays (documented in README): maps deep-merge, lists replace,
scalars replace, and `null` removes an inherited key. An overlay may set `services.<name>.*`, `deploy.*` and `image.*`.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path as FsPath
from typing import Any

from pydantic import BaseModel, ValidationError

from deployctl.config import fargate
from deployctl.config.interpolate import interpolate
from deployctl.config.model import ResolvedConfig
from deployctl.config.source import Document, Path, dotted, parse
from deployctl.errors import ConfigError, ConfigProblem, UsageError

TOP_KEYS = ("version", "app", "region", "image", "stages", "services", "deploy", "environments")
OVERLAY_KEYS = ("services", "deploy", "image")
REQUIRED_TOP = ("version", "app", "region", "image", "services", "environments")


def deep_merge(base: Any, overlay: Any) -> Any:
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for key, value in overlay.items():
            if value is None:
                out.pop(key, None)  # `key: null` in an overlay removes the inherited value
            else:
                out[key] = deep_merge(base[key], value) if key in base else value
        return out
    return overlay


class Loaded:
    """A parsed deploy.yaml: resolve environments from it, or list all problems."""

    def __init__(self, doc: Document, environ: Mapping[str, str]) -> None:
        self.doc = doc
        self.data, self.unset = interpolate(doc.data, environ)

    @property
    def file(self) -> str:
        return self.doc.file

    def env_names(self) -> list[str]:
        envs = self.data.get("environments") if isinstance(self.data, dict) else None
        return list(envs) if isinstance(envs, dict) else []

    # -- problems -------------------------------------------------------------------------
    def structure_problems(self, only_env: str | None) -> list[ConfigProblem]:
        doc, data, out = self.doc, self.data, []
        if not isinstance(data, dict):
            return [doc.problem((), "the file must be a mapping with version, app, services, environments")]
        for key in data:
            if key not in TOP_KEYS:
                out.append(doc.problem((key,), f"unknown key '{key}'", _did_you_mean(key, TOP_KEYS)))
        for key in REQUIRED_TOP:
            if key not in data:
                out.append(doc.problem((), f"missing required key '{key}'"))
        if "version" in data and data["version"] != 1:
            out.append(doc.problem(("version",), f"unsupported version {data['version']!r}",
                                   "this deployctl reads version: 1", key=False))
        for path, var in self.unset.items():
            if _in_scope(path, only_env):
                msg = var if var.startswith("'") else f"environment variable {var} is not set"
                out.append(doc.problem(path, msg, None if var.startswith("'") else f"export {var}=…",
                                       key=False))
        services = data.get("services")
        if "services" in data and (not isinstance(services, dict) or not services):
            out.append(doc.problem(("services",), "expected a mapping of one or more services"))
            services = {}
        envs = data.get("environments")
        if "environments" in data and (not isinstance(envs, dict) or not envs):
            out.append(doc.problem(("environments",), "expected a mapping of one or more environments"))
            envs = {}
        for name, env in (envs or {}).items():
            if only_env and name != only_env:
                continue
            base = ("environments", name)
            if not isinstance(env, dict):
                out.append(doc.problem(base, "expected a mapping with at least `target`"))
                continue
            over = env.get("services")
            if over is not None and not isinstance(over, dict):
                out.append(doc.problem((*base, "services"), "expected a mapping of service name → overrides"))
            for svc in over or {}:
                if isinstance(services, dict) and svc not in services:
                    out.append(doc.problem((*base, "services", svc),
                                           f"unknown service '{svc}'",
                                           _did_you_mean(svc, list(services)) or
                                           f"services are: {', '.join(services)}"))
            src = env.get("promote_from")
            if src is not None and isinstance(envs, dict):
                if src == name:
                    out.append(doc.problem((*base, "promote_from"), "an environment cannot promote from itself",
                                           key=False))
                elif src not in envs:
                    out.append(doc.problem((*base, "promote_from"), f"unknown environment '{src}'",
                                           _did_you_mean(str(src), list(envs)), key=False))
            for section in ("deploy", "image"):
                if section in env and not isinstance(env[section], dict):
                    out.append(doc.problem((*base, section), "expected a mapping of overrides"))
        return out

    def try_resolve(self, env_name: str) -> tuple[ResolvedConfig | None, list[ConfigProblem]]:
        """Resolve when the document's shape allows it; skip problems at unset ${VAR} paths."""
        data = self.data
        if not (isinstance(data, dict) and isinstance(data.get("environments"), dict)
                and isinstance(data["environments"].get(env_name), dict)
                and isinstance(data.get("services", {}), dict)):
            return None, []
        env = data["environments"][env_name]
        if any(k in env and not isinstance(env[k], dict) for k in OVERLAY_KEYS):
            return None, []
        cfg, problems = self.resolve(env_name)
        unset_at = {self.doc.marks.value_at(p) for p in self.unset}
        return cfg, [p for p in problems if (p.line, p.col) not in unset_at]

    def resolve(self, env_name: str) -> tuple[ResolvedConfig | None, list[ConfigProblem]]:
        data = self.data
        env_raw = dict(data["environments"][env_name])
        overlay = {k: env_raw.pop(k) for k in OVERLAY_KEYS if k in env_raw}
        services = data.get("services") or {}
        merged_services = {
            name: deep_merge(svc, (overlay.get("services") or {}).get(name, {}))
            for name, svc in services.items()
        } if isinstance(services, dict) else services
        merged = {
            "version": data.get("version"),
            "app": data.get("app"),
            "region": data.get("region"),
            "env_name": env_name,
            "environment": env_raw,
            "image": deep_merge(data.get("image"), overlay.get("image", {})),
            "stages": data.get("stages") or {},
            "services": merged_services,
            "deploy": deep_merge(data.get("deploy") or {}, overlay.get("deploy", {})),
        }
        origin = _Origin(env_name, overlay)
        problems: list[ConfigProblem] = []
        try:
            cfg = ResolvedConfig.model_validate(merged)
        except ValidationError as exc:
            for err in exc.errors():
                problems.append(self._from_pydantic(err, origin, merged))
            return None, [p for p in problems if p is not None]
        problems.extend(self._semantic(cfg, origin))
        return (cfg if not problems else None), problems

    def _from_pydantic(self, err: Any, origin: _Origin, merged: dict[str, Any]) -> ConfigProblem:
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "[")) or
                                                   p in ("list[str]", "str", "int", "float", "bool")))
        kind, msg = err["type"], err["msg"]
        file_path = origin.map(loc)
        if kind == "extra_forbidden":
            key = str(loc[-1])
            allowed = _fields_at(ResolvedConfig, loc[:-1])
            return self.doc.problem(file_path, f"unknown key '{key}'", _did_you_mean(key, allowed) or
                                    (f"allowed keys: {', '.join(allowed)}" if allowed else None))
        if kind == "missing":
            return self.doc.problem(file_path[:-1], f"missing required key '{loc[-1]}'")
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        elif msg.startswith("Assertion failed, "):
            msg = msg[len("Assertion failed, "):]
        value = err.get("input")
        if kind.endswith("_type") or kind.endswith("_parsing") or kind == "literal_error":
            msg = f"{_lower_first(msg)}, got {_describe(value)}"
        return self.doc.problem(file_path, _lower_first(msg), key=False)

    def _semantic(self, cfg: ResolvedConfig, origin: _Origin) -> list[ConfigProblem]:
        out: list[ConfigProblem] = []
        env = cfg.environment
        envp = ("environment",)
        if env.target == "ecs":
            for key in ("cluster", "network", "roles"):
                if getattr(env, key) is None:
                    out.append(self.doc.problem(origin.map(envp), f"missing required key '{key}' for target ecs"))
        for name, svc in cfg.services.items():
            bad = fargate.check_pair(svc.cpu, svc.memory)
            if bad:
                field = "cpu" if svc.cpu not in fargate.VALID_CPU else "memory"
                out.append(self.doc.problem(origin.map(("services", name, field)), bad,
                                            "see the Fargate size table in the README", key=False))
            for dep in svc.after:
                if dep not in cfg.services or dep == name:
                    out.append(self.doc.problem(origin.map(("services", name, "after")),
                                                f"'{dep}' is not another service", key=False))
        if _has_cycle({n: s.after for n, s in cfg.services.items()}):
            out.append(self.doc.problem(("services",), "services' `after` lists form a cycle"))
        return out


class _Origin:
    """Maps a path in the merged environment back to where the value was written in the file."""

    def __init__(self, env_name: str, overlay: dict[str, Any]) -> None:
        self.env, self.overlay = env_name, overlay

    def map(self, loc: Path) -> Path:
        if not loc:
            return ()
        head, rest = loc[0], tuple(loc[1:])
        if head == "environment":
            return ("environments", self.env, *rest)
        if head == "env_name":
            return ("environments", self.env)
        if head in OVERLAY_KEYS and head in self.overlay:
            node: Any = self.overlay[head]
            depth = 0
            for part in rest:
                if isinstance(node, dict) and part in node:
                    node, depth = node[part], depth + 1
                else:
                    break
            if depth and (depth == len(rest) or not isinstance(node, dict)):
                return ("environments", self.env, head, *rest)
        return tuple(loc)


def _in_scope(path: Path, only_env: str | None) -> bool:
    return not (only_env and len(path) > 1 and path[0] == "environments" and path[1] != only_env)


def _has_cycle(graph: dict[str, list[str]]) -> bool:
    state: dict[str, int] = {}

    def visit(node: str) -> bool:
        if state.get(node) == 1:
            return True
        if state.get(node) == 2 or node not in graph:
            return False
        state[node] = 1
        if any(visit(n) for n in graph[node]):
            return True
        state[node] = 2
        return False

    return any(visit(n) for n in graph)


def _did_you_mean(word: str, choices: Any) -> str | None:
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text and not text[:2].isupper() else text


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}"


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            tp = models[0] if models else args[0]
        else:
            return tp


def _fields_at(model: Any, loc: Path) -> list[str]:
    """Field names allowed at `loc` inside `model`, for did-you-mean hints."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return []
            tp = field.annotation
        elif typing.get_origin(tp) in (dict, list):
            tp = typing.get_args(tp)[-1]
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _dedupe(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    seen, out = set(), []
    for p in sorted(problems, key=lambda p: (p.line, p.col)):
        text = p.format()
        if text not in seen:
            seen.add(text)
            out.append(p)
    return out


def read(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Loaded:
    fs = FsPath(path)
    try:
        text = fs.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file", hint="run from your project root or pass -f PATH") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
    return Loaded(parse(text, str(path)), os.environ if environ is None else environ)


def validate_all(loaded: Loaded) -> dict[str, ResolvedConfig]:
    """Every environment resolved; raises ConfigError listing all problems."""
    problems = loaded.structure_problems(None)
    resolved: dict[str, ResolvedConfig] = {}
    for name in loaded.env_names():
        cfg, found = loaded.try_resolve(name)
        problems.extend(found)
        if cfg:
            resolved[name] = cfg
    if problems:
        raise ConfigError(_dedupe(problems))
    return resolved


def load_env(loaded: Loaded, env_name: str) -> ResolvedConfig:
    """One environment resolved; unknown environment is a usage error naming the choices."""
    names = loaded.env_names()
    if names and env_name not in names:
        raise UsageError(f"unknown environment '{env_name}' in {loaded.file}",
                         hint=_did_you_mean(env_name, names) or f"environments are: {', '.join(names)}")
    problems = loaded.structure_problems(env_name)
    cfg, found = loaded.try_resolve(env_name)
    if cfg and not problems:
        return cfg
    problems.extend(found)
    raise ConfigError(_dedupe(problems))
