"""Environments must not overwrite each other: checks across every environment of deploy.yaml.

Run by `validate` (resolve.validate_all) once each environment has resolved on its own:
- two ECS services (of two environments, or of preview copies) that can get one name in one
  cluster and region: a deploy of one would update the other;
- two task-definition families that can get one name in one region (families are account
  and region wide; release history is read from them);
- two generated CloudWatch alarm names that are equal in one region;
- a load-balancer target group used by two environments, or by a preview environment's
  copies, unless every use says `shared: true`;
- a deploy.service_name template that leaves out {name} in a preview environment (every copy
  would share the services), or uses {name} outside one.

Preview copies have names with a free part (the preview name: lowercase letters, digits and
inner hyphens, at most 20 characters), so a name is a pattern: a list of literal characters and
NAME slots. Two patterns collide when one string matches both; that is decided exactly by
walking both patterns side by side (a product of two small automata), which also yields an
example name for the error message.
"""

from __future__ import annotations

import string
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deployctl.config.model import ResolvedConfig
from deployctl.config.source import Document, Path
from deployctl.errors import ConfigProblem

NAME = None  # a preview-name slot in a pattern
MAX_PREVIEW_NAME = 20  # deployctl.preview.MAX_NAME (config must not import the preview module)
_NAME_CHARS = frozenset(string.ascii_lowercase + string.digits + "-")
_EXAMPLE = "x"  # shown for {name} when a pattern is written out

Pattern = tuple[str | None, ...]


@dataclass(frozen=True)
class _Named:
    """One name an environment's resource gets (a pattern for preview copies)."""

    env: str
    service: str
    pattern: Pattern

    @property
    def text(self) -> str:
        return "".join(_EXAMPLE if c is NAME else c for c in self.pattern)


def check(doc: Document, raw: Any, resolved: Mapping[str, ResolvedConfig]) -> list[ConfigProblem]:
    """Every isolation problem among the resolved ECS environments, located in the file."""
    envs = {n: c for n, c in resolved.items() if c.environment.target == "ecs"}
    where = _Where(doc, raw)
    out: list[ConfigProblem] = []
    out += _templates(envs, where)
    order = list(resolved)
    out += _service_names(envs, where, order)
    out += _families(envs, where, order)
    out += _alarms(envs, where, order)
    out += _target_groups(envs, where, order)
    return out


# ------------------------------------------------------------------------------------------
# Where to point
# ------------------------------------------------------------------------------------------


class _Where:
    def __init__(self, doc: Document, raw: Any) -> None:
        self.doc, self.raw = doc, raw if isinstance(raw, dict) else {}

    def has(self, path: Path) -> bool:
        node: Any = self.raw
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return node is not None

    def template(self, env: str) -> Path:
        """The deploy.service_name an environment uses, where it is written; else the environment."""
        own = ("environments", env, "deploy", "service_name")
        return own if self.has(own) else ("environments", env)

    def override(self, env: str, svc: str, key: str, fallback: Path) -> Path:
        """Where a service's own name (ecs_service, family) is written, else `fallback`."""
        for path in (("environments", env, "services", svc, key), ("services", svc, key)):
            if self.has(path):
                return path
        return fallback

    def target_group(self, env: str, svc: str) -> Path:
        own = ("environments", env, "services", svc, "load_balancer")
        for path in ((*own, "target_group"), (*own, "shared"), own):
            if self.has(path):
                return path
        return ("environments", env)

    def problem(self, path: Path, message: str, hint: str | None = None) -> ConfigProblem:
        return self.doc.problem(path, message, hint)


# ------------------------------------------------------------------------------------------
# Names
# ------------------------------------------------------------------------------------------


def _pattern(template: str, values: Mapping[str, str]) -> Pattern:
    out: list[str | None] = []
    for literal, field, _spec, _conv in string.Formatter().parse(template):
        out += literal.lower()
        if field == "name":
            out.append(NAME)
        elif field is not None:
            out += values[field].lower()
    return tuple(out)


def service_template(cfg: ResolvedConfig) -> str:
    # The same defaults as deployctl.render.ecs.service_name_template (config sits below render).
    if cfg.deploy.service_name:
        return cfg.deploy.service_name
    return "{app}-{env}-{name}-{service}" if cfg.environment.preview else "{app}-{env}-{service}"


def _service_patterns(cfg: ResolvedConfig) -> list[_Named]:
    template = service_template(cfg)
    if not cfg.environment.preview:
        template = template.replace("{name}", "")  # refused by _templates; don't report it twice
    return [_Named(cfg.env_name, svc, _own(cfg, svc, "ecs_service") or
                   _pattern(template, {"app": cfg.app, "env": cfg.env_name, "service": svc}))
            for svc in cfg.services]


def _family_patterns(cfg: ResolvedConfig) -> list[_Named]:
    template = "{app}-{env}-{name}-{service}" if cfg.environment.preview else "{app}-{env}-{service}"
    return [_Named(cfg.env_name, svc, _own(cfg, svc, "family") or
                   _pattern(template, {"app": cfg.app, "env": cfg.env_name, "service": svc}))
            for svc in cfg.services]


def _own(cfg: ResolvedConfig, svc: str, key: str) -> Pattern | None:
    """An adopted service's own name (services.<name>.ecs_service / family): a literal name,
    the same in every environment that inherits it (validate refuses it in previews)."""
    value = getattr(cfg.services[svc], key)
    return tuple(value.lower()) if value and not cfg.environment.preview else None


def _cluster(cfg: ResolvedConfig) -> str:
    # A cluster ARN and its name are the same cluster.
    return (cfg.environment.cluster or "default").rsplit("/", 1)[-1]


def _templates(envs: Mapping[str, ResolvedConfig], where: _Where) -> list[ConfigProblem]:
    out = []
    for name, cfg in envs.items():
        template = service_template(cfg)
        has_name = "{name}" in template
        if cfg.environment.preview and not has_name:
            out.append(where.problem(where.template(name),
                                     f"deploy.service_name '{template}' has no {{name}}: every preview copy "
                                     f"of '{name}' would deploy to the same ECS services",
                                     f"set environments.{name}.deploy.service_name to "
                                     "\"{app}-{env}-{name}-{service}\" (or \"{app}-{name}-{service}\" to keep "
                                     "the names of copies made before names held the environment)"))
        elif has_name and not cfg.environment.preview:
            out.append(where.problem(where.template(name),
                                     f"deploy.service_name '{template}' uses {{name}}, but '{name}' is not a "
                                     "preview environment", "{name} is the preview copy's name; use {app}, "
                                     "{env} and {service} here"))
    return out


def _tail(pattern: Pattern) -> str:
    """The literal text after the last NAME slot: every name of the pattern ends with it."""
    out: list[str] = []
    for c in reversed(pattern):
        if c is NAME:
            break
        out.append(c)
    return "".join(reversed(out))


def _suffixes(text: str) -> Iterator[str]:
    return (text[i:] for i in range(len(text) + 1))


def _pairs(items: Sequence[_Named], order: Sequence[str]) -> Iterator[tuple[_Named, _Named, str]]:
    """(earlier, later, example name) for every two items that can get one name.

    Two names can only meet when one's literal tail (see _tail) ends the other's, so candidates
    come from an index of tails (linear in the number of names, not quadratic); each candidate
    pair is then decided exactly by overlap()."""
    rank = {n: i for i, n in enumerate(order)}
    items = sorted(items, key=lambda x: (rank.get(x.env, len(rank)), x.service))
    exact: dict[str, _Named] = {}
    patterns: list[_Named] = []
    for item in items:
        if NAME in item.pattern:
            patterns.append(item)
            continue
        text = "".join(c for c in item.pattern if c is not None)
        if text in exact:
            yield exact[text], item, text
        else:
            exact[text] = item
    by_tail: dict[str, list[_Named]] = {}  # patterns seen so far, by their tail
    by_suffix: dict[str, list[_Named]] = {}  # ... and by every suffix of their tail
    for p in patterns:
        tail = _tail(p.pattern)
        candidates = [q for t in _suffixes(tail) for q in by_tail.get(t, ())] + by_suffix.get(tail, [])
        by_tail.setdefault(tail, []).append(p)
        for t in _suffixes(tail):
            by_suffix.setdefault(t, []).append(p)
        for q in dict.fromkeys(candidates):
            if (p.env, p.service) != (q.env, q.service):
                example = overlap(p.pattern, q.pattern)
                if example is not None:
                    yield q, p, example
    for text, item in exact.items():
        for p in dict.fromkeys(q for t in _suffixes(text) for q in by_tail.get(t, ())):
            example = overlap(p.pattern, item.pattern)
            if example is not None:
                first, second = (item, p) if rank.get(item.env, 0) <= rank.get(p.env, 0) else (p, item)
                yield first, second, example


def _what(item: _Named, envs: Mapping[str, ResolvedConfig]) -> str:
    copies = " (a preview copy)" if envs[item.env].environment.preview else ""
    return f"service {item.service} of environment '{item.env}'{copies}"


def _service_names(envs: Mapping[str, ResolvedConfig], where: _Where, order: Sequence[str]) -> list[ConfigProblem]:
    groups: dict[tuple[str, str], list[_Named]] = {}
    for cfg in envs.values():
        groups.setdefault((cfg.region, _cluster(cfg)), []).extend(_service_patterns(cfg))
    out = []
    for (region, cluster), items in groups.items():
        for a, b, example in _pairs(items, order):
            fixed = envs[b.env].services[b.service].ecs_service or envs[a.env].services[a.service].ecs_service
            out.append(where.problem(
                where.override(b.env, b.service, "ecs_service", where.template(b.env)),
                f"{_what(b, envs)} and {_what(a, envs)} can both get the ECS service name '{example}' in "
                f"cluster {cluster} ({region}): a deploy of one would update the other",
                "set ecs_service only in the environment that owns that service (under "
                "environments.<env>.services.<name>), or put the environments in separate clusters"
                if fixed else "keep {env} (and {name} for previews) in deploy.service_name, rename an "
                              "environment, or put it in its own cluster"))
    return out


def _families(envs: Mapping[str, ResolvedConfig], where: _Where, order: Sequence[str]) -> list[ConfigProblem]:
    groups: dict[str, list[_Named]] = {}
    for cfg in envs.values():
        groups.setdefault(cfg.region, []).extend(_family_patterns(cfg))
    out = []
    for region, items in groups.items():
        for a, b, example in _pairs(items, order):
            fixed = envs[b.env].services[b.service].family or envs[a.env].services[a.service].family
            out.append(where.problem(
                where.override(b.env, b.service, "family", ("environments", b.env)),
                f"{_what(b, envs)} and {_what(a, envs)} can both get the task-definition family '{example}' "
                f"in {region}: their release histories would mix",
                "set family only in the environment that owns it (under environments.<env>.services.<name>)"
                if fixed else "rename the environment or the service so that <app>-<env>-<service> names differ"))
    return out


def _alarms(envs: Mapping[str, ResolvedConfig], where: _Where, order: Sequence[str]) -> list[ConfigProblem]:
    from deployctl.render.monitoring import alarms  # lazy: render imports config: a cycle at import time

    seen: dict[tuple[str, str], str] = {}
    out = []
    for name in order:
        cfg = envs.get(name)
        if cfg is None or cfg.monitoring is None:
            continue
        for spec in alarms(cfg, cfg.monitoring):
            key = (cfg.region, spec.name)
            other = seen.setdefault(key, name)
            if other != name:
                out.append(where.problem(("environments", name),
                                         f"the generated alarm '{spec.name}' of environment '{name}' has the "
                                         f"name of one of environment '{other}' in {cfg.region}: "
                                         "`monitor apply` would overwrite it",
                                         "rename the environment or the service"))
    return out


def _tg_key(ref: str) -> str:
    # arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID → NAME
    if ref.startswith("arn:") and ":targetgroup/" in ref:
        return ref.split(":targetgroup/", 1)[1].split("/", 1)[0]
    return ref


def _target_groups(envs: Mapping[str, ResolvedConfig], where: _Where, order: Sequence[str]) -> list[ConfigProblem]:
    users: dict[tuple[str, str], list[tuple[str, str, bool]]] = {}
    for name in order:
        cfg = envs.get(name)
        if cfg is None:
            continue
        for svc_name, svc in cfg.services.items():
            lb = svc.load_balancer
            if lb is not None:
                users.setdefault((cfg.region, _tg_key(lb.target_group)), []).append((name, svc_name, lb.shared))
    out = []
    hint = ("give each environment its own target group, or mark every use `load_balancer: {target_group: "
            "…, shared: true}` (each environment then counts only its own tasks' targets)")
    for (_region, tg), found in users.items():
        for i, (env, user, shared) in enumerate(found):
            if shared:
                continue
            if envs[env].environment.preview:
                out.append(where.problem(where.target_group(env, user),
                                         f"service {user} of preview environment '{env}' uses target group {tg}: "
                                         "every preview copy would register in it", hint))
                continue
            earlier = [(e, s) for e, s, _ in found[:i] if e != env]
            later = [(e, s) for e, s, sh in found[i + 1:] if e != env and sh]
            if earlier or later:
                other_env, other_svc = (earlier or later)[0]
                out.append(where.problem(where.target_group(env, user),
                                         f"service {user} of environment '{env}' uses target group {tg}, as "
                                         f"service {other_svc} of environment '{other_env}' does: status and "
                                         "rollouts would count each other's targets, and traffic would go to "
                                         "both", hint))
    return out


# ------------------------------------------------------------------------------------------
# Do two name patterns share a name?
# ------------------------------------------------------------------------------------------

_State = tuple[int, int, bool]  # (position in the pattern, characters in the current slot, last was '-')


def _closure(p: Pattern, state: _State) -> list[_State]:
    out = [state]
    i, k, hyphen = state
    while i < len(p) and p[i] is NAME and k >= 1 and not hyphen:
        i, k, hyphen = i + 1, 0, False  # a preview name ends here (it may go on, too)
        out.append((i, k, hyphen))
    return out


def _step(p: Pattern, state: _State, char: str) -> _State | None:
    i, k, _ = state
    if i >= len(p):
        return None
    if p[i] is NAME:
        if char in _NAME_CHARS and k < MAX_PREVIEW_NAME and not (k == 0 and char == "-"):
            return i, k + 1, char == "-"
        return None
    return (i + 1, 0, False) if p[i] == char else None


def overlap(a: Pattern, b: Pattern) -> str | None:
    """A name both patterns produce, or None when they never share one."""
    if not _ends_compatible(a, b):
        return None
    alphabet = sorted(_NAME_CHARS | {c for c in (*a, *b) if c is not None})
    start = [(x, y) for x in _closure(a, (0, 0, False)) for y in _closure(b, (0, 0, False))]
    seen = set(start)
    todo: deque[tuple[_State, _State, str]] = deque((x, y, "") for x, y in start)
    while todo:
        x, y, text = todo.popleft()
        if x[0] == len(a) and y[0] == len(b):
            return text
        for char in alphabet:
            nx, ny = _step(a, x, char), _step(b, y, char)
            if nx is None or ny is None:
                continue
            for cx in _closure(a, nx):
                for cy in _closure(b, ny):
                    if (cx, cy) not in seen:
                        seen.add((cx, cy))
                        todo.append((cx, cy, text + char))
    return None


def _ends_compatible(a: Pattern, b: Pattern) -> bool:
    """Cheap necessary condition: the literal heads (and tails) agree as far as both go."""
    def head(p: Pattern) -> list[str]:
        out: list[str] = []
        for c in p:
            if c is NAME:
                break
            out.append(c)
        return out

    ha, hb = head(a), head(b)
    ta, tb = head(tuple(reversed(a))), head(tuple(reversed(b)))
    n, m = min(len(ha), len(hb)), min(len(ta), len(tb))
    return ha[:n] == hb[:n] and ta[:m] == tb[:m]
