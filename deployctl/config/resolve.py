"""Load deploy.yaml: parse, interpolate, overlay one environment, validate, locate every problem.

Merge rule for environment overlays (documented in README): maps deep-merge, lists replace,
scalars replace, and `null` removes an inherited key (`services: {worker: null}` drops the
service from that environment). An overlay may set `services.<name>.*`, `deploy.*` and `image.*`.

Why over 500 lines: `Loaded` (parse, interpolate, overlay, validate) and the helpers that turn
pydantic's errors into located, did-you-mean problems walk the same document and key paths, and
nothing outside this module uses those helpers.
"""

from __future__ import annotations

import codecs
import difflib
import os
import re
import stat
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from deployctl.config import fargate, isolation, plain_secrets
from deployctl.config.interpolate import interpolate
from deployctl.config.model import REGION, EnvHealth, Environment, ResolvedConfig, Service
from deployctl.config.source import Document, Path, parse
from deployctl.errors import ConfigError, ConfigProblem, UsageError

TOP_KEYS = ("version", "app", "region", "image", "stages", "services", "deploy", "monitoring", "notify",
            "bootstrap", "frontend", "before_deploy", "jobs", "environments")
OVERLAY_KEYS = ("services", "deploy", "image", "monitoring", "notify", "bootstrap", "frontend", "before_deploy",
                "jobs")
REQUIRED_TOP = ("version", "app", "region", "image", "services", "environments")
# Service and environment names end up in ECS service, family and container names and in log
# group names: ECS allows letters, digits, hyphens and underscores there.
KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def deep_merge(base: Any, overlay: Any) -> Any:
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for key, value in overlay.items():
            if value is None:
                out.pop(key, None)  # `key: null` in an overlay removes the inherited value
            else:
                out[key] = deep_merge(base[key], value) if key in base else _drop_nulls(value)
        return out
    return _drop_nulls(overlay)


def _drop_nulls(value: Any) -> Any:
    # A null inside a map the base never had still means "not set", not a null value.
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    return value


class Loaded:
    """A parsed deploy.yaml: resolve environments from it, or list all problems."""

    def __init__(self, doc: Document, environ: Mapping[str, str]) -> None:
        self.doc = doc
        sources: dict[Path, list[str]] = {}
        self.data, self.unset = interpolate(doc.data, environ, sources)
        doc.from_env, doc.data_after_env = sources, self.data
        doc.env_values = {name: environ[name] for names in sources.values() for name in names}

    @property
    def file(self) -> str:
        return self.doc.file

    def env_names(self) -> list[str]:
        envs = self.data.get("environments") if isinstance(self.data, dict) else None
        return list(envs) if isinstance(envs, dict) else []

    # -- problems -------------------------------------------------------------------------
    def structure_problems(self, only_env: str | None) -> list[ConfigProblem]:
        doc, data = self.doc, self.data
        out: list[ConfigProblem] = list(doc.problems)
        if not isinstance(data, dict):
            return [doc.problem((), f"the file must be a mapping with version, app, region, image, services "
                                    f"and environments, got {_describe(data)}")]
        if not data and not doc.problems:
            return [doc.problem((), "the file is empty", "a deploy.yaml needs version: 1, app, region, "
                                                         "image, services and environments")]
        for key in data:
            if key not in TOP_KEYS:
                out.append(doc.problem((key,), f"unknown key '{key}'", _did_you_mean(key, TOP_KEYS)))
        for key in REQUIRED_TOP:
            if key not in data:
                out.append(doc.problem((), f"missing required key '{key}'"))
        version = data.get("version")
        if "version" in data and (version != 1 or isinstance(version, bool)) and ("version",) not in doc.unusable:
            out.append(doc.problem(("version",), f"unsupported version {_describe(data['version'])}",
                                   "this deployctl reads version: 1", key=False))
        for path, found in self.unset.items():
            if not _in_scope(path, only_env):
                continue
            for bad in (v for v in found if v.startswith("'")):
                out.append(doc.problem(path, bad, key=False))
            names = [v for v in found if not v.startswith("'")]
            if names:  # every unset variable of a value at once: "${REG_HOST}:${REG_PORT}"
                what = f"variable {names[0]} is" if len(names) == 1 else f"variables {_and(names)} are"
                out.append(doc.problem(path, f"environment {what} not set",
                                       f"export {' '.join(n + '=…' for n in names)}", key=False))
        services = data.get("services")
        # An empty map because its only keys were unusable (`~:`) is already reported.
        keys_reported = any(p.path == "services" for p in doc.problems)
        if "services" in data and (not isinstance(services, dict) or not (services or keys_reported)):
            out.append(doc.problem(("services",), "expected a mapping of one or more services"))
            services = {}
        for name in services or {}:
            if not KEY_NAME.match(name):
                out.append(doc.problem(("services", name), f"'{name}' is not a valid service name",
                                       "use letters, digits, '-' and '_' (it becomes part of ECS names)"))
        envs = data.get("environments")
        if "environments" in data and (not isinstance(envs, dict) or not envs):
            out.append(doc.problem(("environments",), "expected a mapping of one or more environments"))
            envs = {}
        cycles = _promotion_cycles(envs or {})
        for name, env in (envs or {}).items():
            if only_env and name != only_env:
                continue
            base = ("environments", name)
            if not KEY_NAME.match(name):
                out.append(doc.problem(base, f"'{name}' is not a valid environment name",
                                       "use letters, digits, '-' and '_' (it becomes part of ECS names)"))
            if not isinstance(env, dict):
                out.append(doc.problem(base, "expected a mapping with at least `target`"))
                continue
            over = env.get("services")
            if over is None and "services" in env:
                # `null` removes an inherited key: here that would be every service.
                out.append(doc.problem((*base, "services"), "`services: null` removes every service; "
                                       "nothing would be deployed",
                                       "leave `services` out to keep the shared services, or set "
                                       "`name: null` for the ones this environment drops"))
            elif over is not None and not isinstance(over, dict):
                out.append(doc.problem((*base, "services"), "expected a mapping of service name → overrides, "
                                       f"got {_describe(over)}"))
            for svc in over or {}:
                if isinstance(services, dict) and svc not in services:
                    out.append(doc.problem((*base, "services", svc),
                                           f"unknown service '{svc}'",
                                           _did_you_mean(svc, services) or
                                           f"services are: {_listing(services)}"))
            src = env.get("promote_from")
            if isinstance(src, str) and isinstance(envs, dict):  # other types: the model says so
                if src == name:
                    out.append(doc.problem((*base, "promote_from"),
                                           "an environment cannot promote from itself", key=False))
                elif src not in envs:
                    out.append(doc.problem((*base, "promote_from"), f"unknown environment '{src}'",
                                           _did_you_mean(str(src), envs), key=False))
                elif env.get("target") == "docker":
                    out.append(doc.problem((*base, "promote_from"), "promote_from is for ECS environments; "
                                           "this one has target: docker",
                                           f"deploy it with `deployctl run --env {name}`, and remove promote_from",
                                           key=False))
                elif name in cycles:
                    out.append(doc.problem((*base, "promote_from"), "promote_from forms a cycle: "
                                           + " → ".join(cycles[name]),
                                           "promotion runs one way: the first environment is deployed with "
                                           "`deployctl run`; remove promote_from from it", key=False))
            for section in ("deploy", "image"):
                if section in env and not isinstance(env[section], dict):
                    out.append(doc.problem((*base, section), f"expected a mapping of overrides, got "
                                           f"{_describe(env[section])}",
                                           f"`{section}` cannot be removed; leave it out to inherit it"
                                           if env[section] is None else None))
            for section in ("monitoring", "notify", "frontend", "before_deploy", "jobs"):
                if env.get(section) is not None and not isinstance(env[section], dict):
                    out.append(doc.problem((*base, section), f"expected a mapping of overrides, got "
                                           f"{_describe(env[section])}",
                                           f"or `{section}: null` to have no {section} in this environment"))
        return out[:len(doc.problems)] + [p for p in out[len(doc.problems):] if doc.is_usable(p)]

    def try_resolve(self, env_name: str) -> tuple[ResolvedConfig | None, list[ConfigProblem]]:
        """Resolve when the document's shape allows it; skip problems at unset ${VAR} paths."""
        data = self.data
        if not (isinstance(data, dict) and isinstance(data.get("environments"), dict)
                and isinstance(data["environments"].get(env_name), dict)
                and isinstance(data.get("services", {}), dict)):
            return None, []
        env = data["environments"][env_name]
        # A non-mapping overlay (structure_problems reports it) leaves nothing sound to merge;
        # null is the documented "remove" (refused for services, deploy and image there too).
        if any(k in env and not isinstance(env[k], dict | None) for k in OVERLAY_KEYS) \
                or ("services" in env and env["services"] is None):
            return None, []
        cfg, problems = self.resolve(env_name)
        unset_at = {self.doc.marks.value_at(p) for p in self.unset}
        return cfg, [p for p in problems if (p.line, p.col) not in unset_at and self.doc.is_usable(p)]

    def resolve(self, env_name: str) -> tuple[ResolvedConfig | None, list[ConfigProblem]]:
        data = self.data
        env_raw = dict(data["environments"][env_name])
        overlay = {k: env_raw.pop(k) for k in OVERLAY_KEYS if k in env_raw}
        services = data.get("services") or {}
        service_overlays = overlay.get("services") or {}
        # `services: {worker: null}` in an environment removes the service there (null removes).
        removed = {n for n, v in service_overlays.items() if v is None} if isinstance(service_overlays, dict) \
            else set()
        health = _health_override(env_raw.get("health"))
        merged_services = {
            name: deep_merge(_with_health(svc, health), service_overlays[name]) if service_overlays.get(name)
            else _with_health(svc, health)
            for name, svc in services.items() if name not in removed
        } if isinstance(services, dict) else services
        # Only keys the file has: a missing top-level key is reported once, by structure_problems,
        # not again as pydantic's complaints about a null.
        merged: dict[str, Any] = {k: data[k] for k in ("version", "app", "region") if k in data}
        merged["env_name"] = env_name
        merged["environment"] = env_raw
        for section in ("image", "deploy", "monitoring", "notify", "bootstrap", "frontend", "before_deploy", "jobs"):
            base_section = data.get(section)
            if section in ("monitoring", "notify", "frontend", "before_deploy", "jobs") and section in overlay \
                    and overlay[section] is None:
                continue  # `monitoring: null`, `notify: null`, …: none in this environment
            if overlay.get(section) and isinstance(base_section, dict | None):
                merged[section] = deep_merge(base_section or {}, overlay[section])
            elif base_section is not None:
                merged[section] = base_section  # a wrong base type is reported where it is written
        merged.setdefault("deploy", {})  # optional in the file: all defaults
        merged["stages"] = {} if data.get("stages") is None else data["stages"]  # `stages: []` is an error
        merged["services"] = merged_services
        origin = _Origin(env_name, overlay)
        problems: list[ConfigProblem] = []
        if removed and isinstance(services, dict) and services and not merged_services:
            problems.append(self.doc.problem(("environments", env_name, "services"),
                                             "these overrides remove every service; nothing would be deployed"))
        cfg: ResolvedConfig | None = None
        try:
            cfg = ResolvedConfig.model_validate(merged)
        except ValidationError as exc:
            for err in _pick_union_branches(exc.errors(), merged):
                found = self._from_pydantic(err, origin)
                if found is not None:
                    problems.append(found)
        # Cross-field checks read the merged data directly, so they report even when some
        # unrelated field failed validation: one run shows everything.
        problems.extend(self._semantic(merged, origin))
        return (cfg if not problems else None), problems

    def _from_pydantic(self, err: Any, origin: _Origin) -> ConfigProblem | None:
        loc = tuple(p for p in err["loc"] if not _is_branch_tag(p))
        kind = err["type"]
        if loc == ("version",):
            return None  # structure_problems says it once, with a hint
        file_path = origin.map(loc)
        if kind == "extra_forbidden":
            key = str(loc[-1])
            allowed = _fields_at(ResolvedConfig, loc[:-1])
            if loc[:-1] == ("environment",):  # the overlay sections sit beside the environment's own keys
                allowed = [*allowed, *OVERLAY_KEYS]
            return self.doc.problem(file_path, f"unknown key '{key}'", _did_you_mean(key, allowed) or
                                    (f"allowed keys: {', '.join(allowed)}" if allowed else None))
        if kind == "missing":
            if tuple(loc) in self.doc.unusable:
                return None  # there, but unreadable (a tag, an alias bomb): reported where it is written
            # Locate the mapping that lacks the key: an override that adds `load_balancer:
            # {container_port: 80}` is where target_group is missing, not the base service.
            return self.doc.problem(origin.map(loc[:-1]), f"missing required key '{loc[-1]}'")
        on_key = "[key]" in err["loc"]  # a bad map key (an env var name): point at the key itself
        return self.doc.problem(file_path, _message(err), _FIELD_HINTS.get(str(loc[-1])) if loc else None,
                                key=on_key)

    def _semantic(self, merged: dict[str, Any], origin: _Origin) -> list[ConfigProblem]:
        out: list[ConfigProblem] = []
        env = merged.get("environment") or {}
        if env.get("target") == "ecs" and not env.get("from_stack"):  # else the stack's outputs give them
            absent = [k for k in ("cluster", "network", "roles")
                      if env.get(k) is None and not _misspelt(k, env, Environment)]
            if absent:
                out.append(self.doc.problem(origin.map(("environment",)),
                                            f"target ecs needs {_and(absent)}: missing required key"
                                            f"{'s' if len(absent) > 1 else ''} {_and(absent, quote=True)}",
                                            "see the staging environment in docs/deploy-yaml.md"))
        out.extend(self._monitoring_refs(merged, origin))
        out.extend(self._before_deploy_refs(merged, origin))
        out.extend(self._job_refs(merged, origin))
        out.extend(self._dockerfile_inside_context(merged, origin))
        services = merged.get("services")
        if not isinstance(services, dict):
            return out
        graph: dict[str, list[str]] = {}
        local_ports: dict[int, str] = {}
        for name, svc in services.items():
            if not isinstance(svc, dict):
                continue
            out.extend(self._fargate_size(name, svc, origin))
            out.extend(self._adopted_names(name, svc, env, origin))
            if env.get("target") == "ecs" and isinstance(svc.get("env"), dict):
                out.extend(self.doc.problem(origin.map(("services", name, "env", var)),
                                            f"{var} is a plain env value and {why}", plain_secrets.HINT)
                           for var, why in plain_secrets.found(svc["env"]))
            port = _as_int(svc.get("local_port"))
            if port is not None and port in local_ports:
                out.append(self.doc.problem(origin.map(("services", name, "local_port")),
                                            f"local_port {port} is also the local_port of service "
                                            f"'{local_ports[port]}'",
                                            "give each service its own port on 127.0.0.1", key=False))
            elif port is not None:
                local_ports[port] = name
            after = svc.get("after")
            if not isinstance(after, list):
                continue
            graph[name] = [d for d in after if isinstance(d, str) and d in services and d != name]
            for i, dep in enumerate(after):
                if not isinstance(dep, str) or (dep in services and dep != name):
                    continue
                why = "a service cannot come after itself" if dep == name else f"unknown service '{dep}'"
                out.append(self.doc.problem(origin.map(("services", name, "after", i)), why,
                                            _did_you_mean(dep, services, besides=name), key=False))
        cycle = _find_cycle(graph)
        if cycle:
            out.append(self.doc.problem(origin.map(("services", cycle[0], "after")),
                                        f"`after` lists form a cycle: {' → '.join(cycle)}",
                                        "remove one of these `after` entries", key=False))
        return out

    def _adopted_names(self, name: str, svc: dict[str, Any], env: dict[str, Any],
                       origin: _Origin) -> list[ConfigProblem]:
        """services.<name>.ecs_service / family name one existing service: a preview environment
        makes a copy per preview name, and every copy would share it."""
        if not env.get("preview"):
            return []
        return [self.doc.problem(origin.map(("services", name, key)),
                                 f"{key} names one existing ECS {'service' if key == 'ecs_service' else 'family'}, "
                                 "but this is a preview environment: every preview copy would share it",
                                 "set it only in the environment that owns the service, e.g. "
                                 f"environments.prod.services.{name}.{key}", key=False)
                for key in ("ecs_service", "family") if svc.get(key)]

    def _dockerfile_inside_context(self, merged: dict[str, Any], origin: _Origin) -> list[ConfigProblem]:
        """The Dockerfile must lie inside the build context: `dockerfile: /etc/passwd` had the build
        read (and echo) a file from anywhere on the machine. Checked on the path as written, and,
        when it exists, on where its symlinks lead."""
        image = merged.get("image")
        if not isinstance(image, dict):
            return []
        context, dockerfile = image.get("context", "."), image.get("dockerfile", "Dockerfile")
        if not (isinstance(context, str) and isinstance(dockerfile, str)) or not dockerfile:
            return []
        outside = os.path.isabs(dockerfile) or os.path.normpath(dockerfile).split(os.sep)[0] == ".."
        if not outside:
            root = os.path.realpath(os.path.join(os.path.dirname(self.doc.file) or ".", context))
            target = os.path.realpath(os.path.join(root, dockerfile))
            outside = os.path.exists(target) and os.path.commonpath([root, target]) != root
        if not outside:
            return []
        return [self.doc.problem(origin.map(("image", "dockerfile")),
                                 "the Dockerfile must be inside the build context (image.context)",
                                 "image.dockerfile is relative to image.context; move the Dockerfile into "
                                 "the context, or make the context a directory that holds it", key=False)]

    def path_problems(self, env_name: str, cfg: ResolvedConfig) -> list[ConfigProblem]:
        """Directories that must exist when the pipeline runs: the build context and each
        stage's workdir, relative to deploy.yaml. Only `validate` checks them: commands such as
        `status` or `rollback` need no source tree."""
        base = os.path.dirname(self.doc.file) or "."
        env_raw = self.data["environments"][env_name]
        origin = _Origin(env_name, {k: env_raw[k] for k in OVERLAY_KEYS if k in env_raw})
        wanted: list[tuple[Path, str, str]] = [(("image", "context"), cfg.image.context, "build context")]
        for stage in ("lint", "test"):
            command = getattr(cfg.stages, stage)
            if command is not None:
                wanted.append((("stages", stage, "workdir"), command.workdir, f"{stage} workdir"))
        if cfg.frontend is not None:
            wanted.append((("frontend", "path"), cfg.frontend.path, "frontend directory"))
        out = []
        for loc, value, what in wanted:
            if not os.path.isdir(os.path.join(base, value)):
                gone = "is not a directory" if os.path.exists(os.path.join(base, value)) else "does not exist"
                out.append(self.doc.problem(origin.map(loc), f"the {what} '{value}' {gone}",
                                            "it is relative to the directory of deploy.yaml", key=False))
        return out

    def _before_deploy_refs(self, merged: dict[str, Any], origin: _Origin) -> list[ConfigProblem]:
        """before_deploy runs as a one-off ECS task of one named service."""
        bd, services = merged.get("before_deploy"), merged.get("services")
        if not isinstance(bd, dict) or not isinstance(services, dict):
            return []
        name = bd.get("service")
        if (merged.get("environment") or {}).get("target") == "docker":
            return [self.doc.problem(origin.map(("before_deploy",)),
                                     "before_deploy runs as a one-off ECS task; this environment has target: docker",
                                     f"add `before_deploy: null` under environments.{origin.env} to run none "
                                     "here", key=False)]
        if name is None and len(services) > 1:
            return [self.doc.problem(origin.map(("before_deploy",)),
                                     "before_deploy needs `service:` when there are several services",
                                     f"name the service whose image and secrets the task uses: "
                                     f"{_listing(services)}", key=False)]
        if isinstance(name, str) and name not in services:
            return [self.doc.problem(origin.map(("before_deploy", "service")), f"unknown service '{name}'",
                                     _did_you_mean(name, services) or f"services are: {_listing(services)}",
                                     key=False)]
        return []

    def _job_refs(self, merged: dict[str, Any], origin: _Origin) -> list[ConfigProblem]:
        """Each job runs as a one-off ECS task of one named service, by a role the scheduler assumes."""
        jobs, services = merged.get("jobs"), merged.get("services")
        if not isinstance(jobs, dict) or not jobs or not isinstance(services, dict):
            return []
        env = merged.get("environment") or {}
        if env.get("target") == "docker":
            return [self.doc.problem(origin.map(("jobs",)),
                                     "jobs run as scheduled ECS tasks; this environment has target: docker",
                                     f"add `jobs: null` under environments.{origin.env} to schedule none here",
                                     key=False)]
        out: list[ConfigProblem] = []
        if env.get("jobs_role") is None:
            out.append(self.doc.problem(origin.map(("environment",)),
                                        "jobs need `jobs_role`: the IAM role EventBridge Scheduler assumes to "
                                        "start their tasks",
                                        "see docs/jobs.md for the role's trust and permissions"))
        for name, job in jobs.items():
            if not isinstance(job, dict):
                continue
            svc = job.get("service")
            if svc is None and len(services) > 1:
                out.append(self.doc.problem(origin.map(("jobs", name)),
                                            f"job {name} needs `service:` when there are several services",
                                            f"name the service whose image and secrets it uses: {_listing(services)}",
                                            key=False))
                continue
            if isinstance(svc, str) and svc not in services:
                out.append(self.doc.problem(origin.map(("jobs", name, "service")), f"unknown service '{svc}'",
                                            _did_you_mean(svc, services) or f"services are: {_listing(services)}",
                                            key=False))
                continue
            base = services.get(svc if isinstance(svc, str) else next(iter(services)))
            if not isinstance(base, dict) or ("cpu" not in job and "memory" not in job):
                continue
            fields = Service.model_fields
            cpu = _as_int(job.get("cpu", base.get("cpu", fields["cpu"].default)))
            memory = _as_int(job.get("memory", base.get("memory", fields["memory"].default)))
            bad = fargate.check_pair(cpu, memory) if cpu is not None and memory is not None else None
            if bad:
                field = "cpu" if "cpu" in job else "memory"
                out.append(self.doc.problem(origin.map(("jobs", name, field)), bad,
                                            "see the Fargate size table in docs/deploy-yaml.md", key=False))
        return out

    def _monitoring_refs(self, merged: dict[str, Any], origin: _Origin) -> list[ConfigProblem]:
        """Names in `monitoring` that must match something, or alarms silently vanish."""
        mon = merged.get("monitoring")
        if not isinstance(mon, dict):
            return []
        out: list[ConfigProblem] = []
        shared = self.data.get("services")
        names = [str(n) for n in shared] if isinstance(shared, dict) else []
        for section in ("tokens", "api_calls_per_hour", "queue"):
            svc = mon[section].get("service") if isinstance(mon.get(section), dict) else None
            if isinstance(svc, str) and names and svc not in names:
                out.append(self.doc.problem(origin.map(("monitoring", section, "service")),
                                            f"unknown service '{svc}'",
                                            _did_you_mean(svc, names) or f"services are: {_listing(names)}",
                                            key=False))
        cap = mon.get("cost_cap")
        stopped = cap.get("services") if isinstance(cap, dict) else None
        for i, svc in enumerate(stopped if isinstance(stopped, list) else []):
            if isinstance(svc, str) and names and svc not in names:
                out.append(self.doc.problem(origin.map(("monitoring", "cost_cap", "services", i)),
                                            f"unknown service '{svc}': the cost cap cannot stop it",
                                            _did_you_mean(svc, names) or f"services are: {_listing(names)}",
                                            key=False))
        endpoints = mon.get("endpoints")
        if isinstance(endpoints, dict) and isinstance(endpoints.get("per_route"), dict):
            routes = [str(r) for r in endpoints.get("routes") or [] if isinstance(r, str)] \
                if isinstance(endpoints.get("routes"), list) else []
            for route in endpoints["per_route"]:
                if isinstance(route, str) and route not in routes:
                    out.append(self.doc.problem(origin.map(("monitoring", "endpoints", "per_route", route)),
                                                f"per_route names '{route}', which is not in routes",
                                                _did_you_mean(route, routes) or
                                                f"routes are: {_listing(routes) if routes else 'none'}",
                                                key=True))
        # The default [error_rate] quietly does nothing without error_rate; a list written out
        # must name alarms this monitoring section actually creates.
        wanted = mon.get("roll_back_on")
        needs: dict[str, tuple[str, ...]] = {f"latency_{pct}": ("latency", pct) for pct in ("p50", "p95", "p99")}
        needs.update({"error_rate": ("error_rate",), "tokens_per_request": ("tokens", "max_per_request"),
                      "queue_depth": ("queue",)})
        for i, name in enumerate(wanted if isinstance(wanted, list) else []):
            if not isinstance(name, str) or name not in needs or _lookup(mon, needs[name]) is not None:
                continue  # set, or an unknown name (the model reports that)
            setting = ".".join(("monitoring", *needs[name]))
            out.append(self.doc.problem(origin.map(("monitoring", "roll_back_on", i)),
                                        f"roll_back_on names {name} but {setting} is not set",
                                        f"set {setting}, or remove {name} from roll_back_on",
                                        key=False))
        return out

    def _fargate_size(self, name: str, svc: dict[str, Any], origin: _Origin) -> list[ConfigProblem]:
        fields = Service.model_fields
        cpu = _as_int(svc.get("cpu", fields["cpu"].default))
        memory = _as_int(svc.get("memory", fields["memory"].default))
        typo = _misspelt("cpu", svc, Service) or _misspelt("memory", svc, Service)
        if cpu is None or memory is None or typo:
            return []  # a wrong type or a typo (cpus:, memroy:) is reported already; don't pile on
        bad = fargate.check_pair(cpu, memory)
        if not bad:
            return []
        # Blame the value the environment changed: an override of cpu alone can break a memory
        # value that is fine in the base service.
        cpu_at = origin.map(("services", name, "cpu"))
        mem_at = origin.map(("services", name, "memory"))
        overridden_cpu = cpu_at[0] == "environments" and mem_at[0] != "environments"
        field = "cpu" if cpu not in fargate.VALID_CPU or overridden_cpu or "memory" not in svc else "memory"
        return [self.doc.problem(origin.map(("services", name, field)), bad,
                                 "see the Fargate size table in docs/deploy-yaml.md", key=False)]


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


def _health_override(raw: Any) -> dict[str, Any]:
    """environments.<env>.health as values to lay over each service's health ({} when absent or
    wrong: a wrong one is reported once, at the environment, not again at every service)."""
    if not isinstance(raw, dict):
        return {}
    try:
        return EnvHealth.model_validate(raw).given()
    except ValidationError:
        return {}


def _with_health(svc: Any, override: dict[str, Any]) -> Any:
    """A service with the environment's health timings; its own overlay in that environment
    (environments.<env>.services.<name>.health) is merged after, so the more specific one wins."""
    if not override or not isinstance(svc, dict) or not isinstance(svc.get("health"), dict):
        return svc
    return {**svc, "health": {**svc["health"], **override}}


def _in_scope(path: Path, only_env: str | None) -> bool:
    return not (only_env and len(path) > 1 and path[0] == "environments" and path[1] != only_env)


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One cycle as a path that returns to its start (a → b → a), or None.

    Depth-first with an explicit stack: a chain of a thousand `after`s must not hit Python's
    recursion limit."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in graph:
        if state.get(start):
            continue
        path: list[str] = [start]
        todo: list[list[str]] = [list(graph[start])]
        state[start] = 1
        while path:
            if not todo[-1]:
                state[path.pop()] = 2
                todo.pop()
                continue
            nxt = todo[-1].pop(0)
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if state.get(nxt) == 2 or nxt not in graph:
                continue
            state[nxt] = 1
            path.append(nxt)
            todo.append(list(graph[nxt]))
    return None


def _promotion_cycles(envs: dict[str, Any]) -> dict[str, list[str]]:
    """Each environment on a promote_from cycle → the cycle from it (a → b → a). One pass over
    the chains: each environment has at most one source, so every walk is followed once."""
    source = {name: env["promote_from"] for name, env in envs.items()
              if isinstance(env, dict) and isinstance(env.get("promote_from"), str)
              and env["promote_from"] in envs and env["promote_from"] != name}
    seen: set[str] = set()
    out: dict[str, list[str]] = {}
    for start in envs:
        walk: list[str] = []
        at: str | None = start
        while at is not None and at not in seen:
            seen.add(at)
            walk.append(at)
            at = source.get(at)
        if at is not None and at in walk:  # this walk came back to itself
            loop = walk[walk.index(at):]
            for i, name in enumerate(loop):
                order = loop[i:] + loop[:i]
                out[name] = [*order, name]
    return out


def _misspelt(key: str, data: dict[str, Any], model: type[BaseModel]) -> bool:
    """True when `key` is absent but an unknown key close to it is present (already reported)."""
    if key in data:
        return False
    unknown = [str(k) for k in data if k not in model.model_fields]
    return bool(difflib.get_close_matches(key, unknown, n=1, cutoff=0.6))


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)  # pydantic's lax mode accepts "1024" too
    return None


def _and(items: list[str], quote: bool = False) -> str:
    words = [f"'{i}'" if quote else i for i in items]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


# Pydantic's union branch tags in error locations: `list[str] | str` fails as "list[str]" and "str".
_UNION_TAG = re.compile(r"^(str|int|float|bool|(list|dict|set|tuple)\[.*\])$")


def _is_branch_tag(part: Any) -> bool:
    """Location parts that are not keys: union branches, validator wrappers, `[key]` markers."""
    return isinstance(part, str) and (bool(_UNION_TAG.match(part)) or part.startswith(("function-", "[")))


def _lookup(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        in_map = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and part < len(data)
        if not (in_map or in_list):
            return None
        data = data[part]
    return data


_BRANCH_FOR = {list: "list", dict: "dict", str: "str", bool: "bool", int: "int", float: "float"}
_BRANCH_WORDS = {"list": "a list", "dict": "a mapping", "str": "a string", "int": "a whole number",
                 "float": "a number", "bool": "true or false"}


def _pick_union_branches(errors: list[Any], merged: dict[str, Any]) -> list[Any]:
    """Pydantic reports a failed union once per branch; keep what the user meant.

    The branch matching the kind of value written (a list for `list[str] | str`) explains the
    real problem; when no branch matches, one line says which kinds are accepted.
    """
    groups: dict[tuple[Any, ...], list[tuple[str, Any]]] = {}
    out: list[Any] = []
    for err in errors:
        loc = tuple(err["loc"])
        at = next((i for i, p in enumerate(loc) if isinstance(p, str) and _UNION_TAG.match(p)), None)
        if at is None:
            out.append(err)
            continue
        groups.setdefault(loc[:at], []).append((str(loc[at]).split("[")[0], err))
    for prefix, branch_errors in groups.items():
        value = _lookup(merged, tuple(p for p in prefix if not _is_branch_tag(p)))
        wanted = _BRANCH_FOR.get(type(value))
        chosen = [e for tag, e in branch_errors if tag == wanted]
        if chosen:
            out.extend(chosen)
            continue
        kinds = list(dict.fromkeys(_BRANCH_WORDS.get(tag, tag) for tag, _ in branch_errors))
        out.append({"loc": prefix, "type": "union_type", "input": value,
                    "msg": f"expected {' or '.join(kinds)}", "ctx": {}})
    return out


_PATTERNS = {
    r"^[a-z][a-z0-9-]{0,39}$": "expected lowercase letters, digits and '-', starting with a letter, "
                               "at most 40 characters",
    r"^[a-z0-9][a-z0-9._/-]*$": "expected a repository name: lowercase letters, digits and . _ / -",
    r"^/": "expected a path starting with /",
    REGION: "expected an AWS region name such as us-east-1 or eu-west-2",
}
_FIELD_HINTS = {
    "memory": "MiB, e.g. 4096 for 4 GB",
    "cpu": "CPU units: 256, 512, 1024 (1 vCPU), 2048, 4096, 8192, 16384",
}


def _message(err: Any) -> str:
    """A pydantic error as a sentence saying what was expected and what was written."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    got = f", got {_describe(value)}"
    simple = {
        "string_type": "expected a string",
        "string_unicode": "expected valid Unicode text (this holds an unpaired surrogate)",
        "int_type": "expected a whole number", "int_parsing": "expected a whole number",
        "int_from_float": "expected a whole number",
        "float_type": "expected a number", "float_parsing": "expected a number",
        "finite_number": "expected a finite number",
        "bool_type": "expected true or false", "bool_parsing": "expected true or false",
        "dict_type": "expected a mapping (key: value)", "list_type": "expected a list",
        "model_type": "expected a mapping (key: value)",
        "model_attributes_type": "expected a mapping (key: value)",
        "union_type": err["msg"],
    }
    if kind == "string_too_short":
        return "must not be empty"
    if kind in simple:
        return simple[kind] + got
    if kind == "literal_error":
        return f"expected {ctx.get('expected', '')}{got}"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"expected at least {n} item{'s' if n != 1 else ''}{got}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        words = {"greater_than_equal": "at least", "less_than_equal": "at most",
                 "greater_than": "more than", "less_than": "less than"}[kind]
        bound = next(iter(ctx.values()), "")
        return f"must be {words} {bound}{got}"
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        return _PATTERNS.get(pattern, f"expected text matching {pattern}") + got
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return _lower_first(msg) + (got if kind.endswith(("_type", "_parsing")) else "")


# Suggestions compare a word with every choice: with thousands of names, each unknown one
# would cost thousands of comparisons, and a hostile file has thousands of unknown names.
MAX_SUGGEST_FROM = 100


def _did_you_mean(word: str, choices: Any, besides: str | None = None) -> str | None:
    if len(choices) > MAX_SUGGEST_FROM:
        return None
    names = [str(c) for c in choices if c != besides]
    match = difflib.get_close_matches(str(word), names, n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


def _listing(names: Any, most: int = 10) -> str:
    """Names for a hint, the first few when there are many (one line per problem, not a page)."""
    shown = [str(n) for _, n in zip(range(most), names, strict=False)]
    return ", ".join(shown) + (f" … ({len(names)} in all)" if len(names) > most else "")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text and not text[:2].isupper() else text


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'" if value else "an empty string"
    return repr(value)


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


# deploy.yaml is a few KB; anything near this is a mistake (a log, a dump, /dev/zero) and would
# only cost memory and time. Documented in docs/config-limits.md.
MAX_FILE_BYTES = 1024 * 1024


def read(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Loaded:
    raw = _read_file(path)
    return Loaded(parse(_decode(raw, str(path)), str(path)), os.environ if environ is None else environ)


def _read_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES, or a UsageError (exit 2).

    A FIFO would block `open` until a writer comes, and a device (/dev/zero) or a huge file
    would be read into memory without end: look at what the path is before reading anything,
    and never read more than the limit."""
    try:
        kind = _kind(os.stat(path).st_mode)
        if kind is None:  # regular: open without blocking (it may have been swapped since) and check again
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
            try:
                info = os.fstat(fd)
                kind = _kind(info.st_mode)
                if kind is None and info.st_size <= MAX_FILE_BYTES:
                    with os.fdopen(os.dup(fd), "rb") as fh:
                        raw = fh.read(MAX_FILE_BYTES + 1)  # the file may grow after fstat
                    if len(raw) <= MAX_FILE_BYTES:
                        return raw
            finally:
                os.close(fd)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file", hint="run from your project root or pass -f PATH") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if kind is not None:
        raise UsageError(f"{path}: not a regular file (it is {kind})",
                         hint="pass the path of a deploy.yaml file with -f")
    raise UsageError(f"{path}: too large for a deploy.yaml (more than {MAX_FILE_BYTES // 2**20} MiB)",
                     hint="deploy.yaml describes an app in a few KB; check the path given to -f")


def _kind(mode: int) -> str | None:
    """None for a regular file, else what the path is, in words."""
    if stat.S_ISREG(mode):
        return None
    for test, words in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return words
    return "something other than a file"


def _decode(raw: bytes, file: str) -> str:
    """UTF-8 text, or a located problem saying where it is not."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # what some Windows editors save
        raise ConfigError([ConfigProblem(file, 1, 1, "", "not UTF-8: the file starts with a UTF-16 "
                                         "byte-order mark", "save the file as UTF-8")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[:exc.start]
        line_start = before.rfind(b"\n") + 1
        col = len(before[line_start:].decode("utf-8", errors="replace")) + 1
        raise ConfigError([ConfigProblem(file, before.count(b"\n") + 1, col, "",
                                         f"not UTF-8 (byte 0x{raw[exc.start]:02x})",
                                         "save the file as UTF-8")]) from None


def validate_all(loaded: Loaded) -> dict[str, ResolvedConfig]:
    """Every environment resolved; raises ConfigError listing all problems."""
    problems = loaded.structure_problems(None)
    resolved: dict[str, ResolvedConfig] = {}
    seen_in: dict[str, tuple[ConfigProblem, list[str]]] = {}
    names = loaded.env_names()
    for name in names:
        cfg, found = loaded.try_resolve(name)
        for p in found:
            seen_in.setdefault(p.format(), (p, []))[1].append(name)
        if cfg:
            resolved[name] = cfg
            for p in loaded.path_problems(name, cfg):
                seen_in.setdefault(p.format(), (p, []))[1].append(name)
    for p, envs in seen_in.values():
        # A problem written in the shared part of the file but caused by some environments'
        # overrides (say `port: null` under dev) must say which environments.
        if not p.path.startswith("environments.") and len(envs) < len(names):
            p.message += f" (in environment{'s' if len(envs) > 1 else ''} {', '.join(envs)})"
        problems.append(p)

    problems.extend(isolation.check(loaded.doc, loaded.data, resolved))  # no env overwrites another
    if not problems and len(resolved) < len(names):  # never drop an environment without a word
        problems = [_unexplained(loaded, n) for n in names if n not in resolved]
    if problems:
        raise ConfigError(_dedupe(problems))
    return resolved


def load_env(loaded: Loaded, env_name: str) -> ResolvedConfig:
    """One environment resolved; unknown environment is a usage error naming the choices."""
    names = loaded.env_names()
    if names and env_name not in names:
        guess = _did_you_mean(env_name, names)
        raise UsageError(f"unknown environment '{env_name}' in {loaded.file}",
                         hint=f"{guess + ' ' if guess else ''}environments are: {', '.join(names)}")
    problems = loaded.structure_problems(env_name)
    cfg, found = loaded.try_resolve(env_name)
    if cfg and not problems:
        return cfg
    problems.extend(found)
    raise ConfigError(_dedupe(problems) or [_unexplained(loaded, env_name)])


def _unexplained(loaded: Loaded, env_name: str) -> ConfigProblem:
    """A failure no check explained: still located, never an empty "0 problems" error."""
    return loaded.doc.problem(("environments", env_name),
                              f"environment '{env_name}' could not be resolved, and no check says why",
                              "this is a deployctl bug: please report it with this file")
