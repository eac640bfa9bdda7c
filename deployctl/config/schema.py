"""JSON Schema of deploy.yaml (for editors via yaml-language-server, and for CI tooling)."""

from __future__ import annotations

import copy
import functools
import operator
import types
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from deployctl.config import model as m

_PATCHES: dict[type[BaseModel], type[BaseModel]] = {}


def _patch_type(annotation: Any) -> Any:
    """The overlay form of a field type: nested models become patches too (an environment may
    set `load_balancer: {container_port: 80}` alone), inside unions, lists and dicts alike."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _patch(annotation, f"{annotation.__name__}Override")
    if origin in (typing.Union, types.UnionType):
        return functools.reduce(operator.or_, [_patch_type(a) for a in typing.get_args(annotation)])
    if origin is dict:
        key, value = typing.get_args(annotation)
        return dict[key, _patch_type(value)]  # type: ignore[misc, valid-type]
    return annotation


def _patch(cls: type[BaseModel], name: str) -> type[BaseModel]:
    """Same keys as `cls`, all optional and nullable (null removes an inherited value): what an
    environment overlay may set."""
    if cls not in _PATCHES:
        fields: dict[str, Any] = {key: (_patch_type(f.annotation) | None, Field(None, description=f.description))
                                  for key, f in cls.model_fields.items()}
        _PATCHES[cls] = create_model(name, __config__=ConfigDict(extra="forbid"), **fields)
    return _PATCHES[cls]


ServicePatch = _patch(m.Service, "ServiceOverride")
DeployPatch = _patch(m.Deploy, "DeployOverride")
ImagePatch = _patch(m.ImageConfig, "ImageOverride")
MonitoringPatch = _patch(m.Monitoring, "MonitoringOverride")
NotifyPatch = _patch(m.Notify, "NotifyOverride")
BootstrapPatch = _patch(m.Bootstrap, "BootstrapOverride")
FrontendPatch = _patch(m.Frontend, "FrontendOverride")
BeforeDeployPatch = _patch(m.BeforeDeploy, "BeforeDeployOverride")
JobPatch = _patch(m.Job, "JobOverride")


class EnvironmentFile(m.Environment):
    # `services`, `deploy` and `image` cannot be removed (validate refuses null); monitoring can.
    services: dict[str, ServicePatch | None] = Field(  # type: ignore[valid-type]
        default_factory=dict,
        description="Per-service overrides (maps deep-merge, lists replace, null removes; `name: null` "
                    "drops the service from this environment)")
    deploy: DeployPatch = Field(default_factory=DeployPatch)  # type: ignore[valid-type]
    image: ImagePatch = Field(default_factory=ImagePatch)  # type: ignore[valid-type]
    monitoring: MonitoringPatch | None = Field(  # type: ignore[valid-type]
        None, description="Monitoring overrides; null turns monitoring off in this environment")
    notify: NotifyPatch | None = Field(  # type: ignore[valid-type]
        None, description="Notification overrides; null turns notifications off in this environment")
    bootstrap: BootstrapPatch | None = Field(  # type: ignore[valid-type]
        None, description="`deployctl bootstrap` overrides for this environment")
    frontend: FrontendPatch | None = Field(  # type: ignore[valid-type]
        None, description="Frontend overrides (Vercel); null deploys no frontend in this environment")
    before_deploy: BeforeDeployPatch | None = Field(  # type: ignore[valid-type]
        None, description="before_deploy overrides; null runs no before_deploy in this environment")
    jobs: dict[str, JobPatch | None] | None = Field(  # type: ignore[valid-type]
        None, description="Job overrides (`name: null` drops a job); null schedules no jobs in this environment")


class DeployFile(m.Strict):
    version: Literal[1]
    app: m.Name
    region: Annotated[str, Field(pattern=m.REGION)]
    image: m.ImageConfig
    stages: m.Stages = m.Stages()
    services: dict[str, m.Service]
    deploy: m.Deploy = m.Deploy()
    monitoring: m.Monitoring | None = None
    notify: m.Notify | None = None
    bootstrap: m.Bootstrap | None = None
    frontend: m.Frontend | None = None
    before_deploy: m.BeforeDeploy | None = None
    jobs: dict[m.JobName, m.Job] = Field(default_factory=dict)
    environments: dict[str, EnvironmentFile]


def _overlay_property(prop: dict[str, Any], patched: set[str]) -> dict[str, Any]:
    """A base model's property schema as an overlay may write it: nested models as their
    overrides, null allowed (it removes the inherited value), and null map values too."""
    prop = copy.deepcopy(prop)

    def refs(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/") and ref[len("#/$defs/"):] in patched:
                node["$ref"] = f"{ref}Override"
            for value in node.values():
                refs(value)
        elif isinstance(node, list):
            for value in node:
                refs(value)

    refs(prop)
    meta: dict[str, Any] = {k: prop.pop(k) for k in ("title", "description", "default") if k in prop}
    meta["default"] = None
    branches = prop["anyOf"] if list(prop) == ["anyOf"] else [prop]
    for branch in branches:
        if branch.get("type") == "object" and isinstance(branch.get("additionalProperties"), dict):
            branch["additionalProperties"] = {"anyOf": [branch["additionalProperties"], {"type": "null"}]}
    if {"type": "null"} not in branches:
        branches = [*branches, {"type": "null"}]
    return {"anyOf": branches, **meta}


def json_schema() -> dict[str, Any]:
    schema = DeployFile.model_json_schema()
    # pydantic builds the override models from bare annotations, losing what Annotated adds
    # (durations and sizes as strings, patterns, bounds): take each property from its model.
    defs = schema["$defs"]
    patched = {cls.__name__ for cls in _PATCHES if cls.__name__ in defs}
    for cls, patch in _PATCHES.items():
        base, over = defs.get(cls.__name__), defs.get(patch.__name__)
        if base is None or over is None:
            continue
        over["properties"] = {key: _overlay_property(prop, patched) for key, prop in base["properties"].items()}
        over.pop("required", None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "deployctl deploy.yaml (version 1)"
    return schema
