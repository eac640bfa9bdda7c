"""JSON Schema of deploy.yaml (for editors via yaml-language-server, and for CI tooling)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from deployctl.config import model as m


def _optional(annotation: Any) -> Any:
    return annotation | None


def _patch(cls: type[BaseModel], name: str) -> type[BaseModel]:
    """Same keys as `cls`, all optional: what an environment overlay may set."""
    fields: dict[str, Any] = {key: (_optional(f.annotation), None) for key, f in cls.model_fields.items()}
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


ServicePatch = _patch(m.Service, "ServiceOverride")
DeployPatch = _patch(m.Deploy, "DeployOverride")
ImagePatch = _patch(m.ImageConfig, "ImageOverride")
MonitoringPatch = _patch(m.Monitoring, "MonitoringOverride")


class EnvironmentFile(m.Environment):
    services: dict[str, ServicePatch | None] = Field(  # type: ignore[valid-type]
        default_factory=dict,
        description="Per-service overrides (maps deep-merge, lists replace, null removes; `name: null` "
                    "drops the service from this environment)")
    deploy: DeployPatch | None = None  # type: ignore[valid-type]
    image: ImagePatch | None = None  # type: ignore[valid-type]
    monitoring: MonitoringPatch | None = None  # type: ignore[valid-type]


class DeployFile(m.Strict):
    version: Literal[1]
    app: m.Name
    region: str
    image: m.ImageConfig
    stages: m.Stages = m.Stages()
    services: dict[str, m.Service]
    deploy: m.Deploy = m.Deploy()
    monitoring: m.Monitoring | None = None
    environments: dict[str, EnvironmentFile]


def json_schema() -> dict[str, Any]:
    schema = DeployFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "deployctl deploy.yaml (version 1)"
    return schema
