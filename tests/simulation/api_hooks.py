"""Request-level hooks of the rollout SIMULATION: API call log and throttling injection.

``DomainDispatcherApplication.__call__`` (moto's WSGI entry point, used by ThreadedMotoServer)
is wrapped, so every request of every service is seen once, whatever protocol moto uses
behind it (S3 does not go through ``BaseResponse.call_action``). The operation name is read
from the request the way AWS would route it: the ``X-Amz-Target`` header (JSON protocols),
the ``/service/<prefix>/operation/<Op>`` path (Smithy RPC v2 CBOR), the ``Action`` form field
(query protocols), or the botocore HTTP bindings (REST protocols).

Throttling errors are written in each protocol's own error format so botocore parses the code
and treats it as throttling (its retry handlers then retry it as they would on AWS).
"""

from __future__ import annotations

import functools
import io
import json
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from .ecs_rollout import RolloutSimulation

_SIGNING_TO_CLIENT = {
    "monitoring": "cloudwatch",
    "email": "ses",
    "states": "stepfunctions",
    "elasticmapreduce": "emr",
    "es": "opensearch",
}
_ELB_VERSIONS = {"2015-12-01": "elbv2", "2012-06-01": "elb"}
_SKIP_BACKENDS = {None, "moto_api", "instance_metadata"}


def make_wsgi_hook(get_active: Callable[[], RolloutSimulation | None]) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        @functools.wraps(original)
        def __call__(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
            sim = get_active()
            if sim is None:
                return original(self, environ, start_response)
            app = self.get_application(environ)
            backend = getattr(app, "service", None)
            if backend in _SKIP_BACKENDS:
                return app(environ, start_response)
            service, action, protocol = identify(environ, backend)
            rule = sim.take_throttle(service, action)
            reached = sim.record_call(service, action, throttled=rule is not None)
            if rule is not None:
                return throttle_response(start_response, service, protocol, environ, rule)
            try:
                return app(environ, start_response)
            finally:
                for event in reached:
                    event.set()

        return __call__

    return make


def _form_body(environ: dict[str, Any]) -> dict[str, str]:
    if not str(environ.get("CONTENT_TYPE", "")).startswith("application/x-www-form-urlencoded"):
        return {}
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return {}
    if not length:
        return {}
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)  # let moto read it again
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def identify(environ: dict[str, Any], backend: str | None) -> tuple[str, str, str]:
    """(boto3 service name, operation name, protocol) of a request."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    match = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/", auth)
    signing = match.group(1) if match else (backend or "unknown")
    service = _SIGNING_TO_CLIENT.get(signing, signing)
    target = environ.get("HTTP_X_AMZ_TARGET")
    path = environ.get("PATH_INFO", "")
    if target:
        return service, target.rsplit(".", 1)[-1], "json"
    cbor = re.match(r"^/service/[^/]+/operation/([^/]+)$", path)
    if cbor:
        return service, cbor.group(1), "cbor"
    form = _form_body(environ)
    if "Action" in form:
        if signing == "elasticloadbalancing":
            service = _ELB_VERSIONS.get(form.get("Version", ""), "elbv2")
        return service, form["Action"], "query"
    return service, _rest_action(service, environ), "rest"


@functools.cache
def _service_model(service: str) -> Any:
    import botocore.session

    try:
        return botocore.session.get_session().get_service_model(service)
    except Exception:
        return None


@functools.cache
def _rest_routes(service: str) -> list[tuple[str, re.Pattern[str], dict[str, str | None], int, list[str], str]]:
    model = _service_model(service)
    if model is None:
        return []
    routes = []
    for name in model.operation_names:
        op = model.operation_model(name)
        uri = op.http.get("requestUri", "/")
        path, _, query = uri.partition("?")
        required: dict[str, str | None] = {}
        for part in filter(None, query.split("&")):
            key, _, value = part.partition("=")
            if key != "x-id":  # botocore does not send x-id
                required[key] = value or None
        pattern = re.sub(
            r"\{([^}]+)\}",
            lambda m: ".+" if m.group(1).endswith("+") else "[^/]+",
            re.escape(path).replace(r"\{", "{").replace(r"\}", "}"),
        )
        headers = []
        shape = op.input_shape
        if shape is not None:
            for member in shape.required_members:
                ser = shape.members[member].serialization
                if ser.get("location") == "header":
                    headers.append("HTTP_" + ser.get("name", member).upper().replace("-", "_"))
        literal = len(re.sub(r"\{[^}]+\}", "", path))
        routes.append((op.http.get("method", "GET"), re.compile(f"^{pattern}/?$"), required, literal, headers, name))
    return routes


def _rest_action(service: str, environ: dict[str, Any]) -> str:
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "/")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    best: tuple[tuple[int, int, int], str] | None = None
    for verb, pattern, required, literal, headers, name in _rest_routes(service):
        if verb != method or not pattern.match(path):
            continue
        if any(k not in query or (v is not None and query[k][0] != v) for k, v in required.items()):
            continue
        if any(h not in environ for h in headers):
            continue
        score = (len(required), len(headers), literal)
        if best is None or score > best[0]:
            best = (score, name)
    return best[1] if best else f"{method} {path}"


def _cbor_text(value: str) -> bytes:
    data = value.encode()
    n = len(data)
    if n < 24:
        return bytes([0x60 | n]) + data
    if n < 256:
        return bytes([0x78, n]) + data
    return bytes([0x79]) + n.to_bytes(2, "big") + data


def throttle_response(
    start_response: Any, service: str, protocol: str, environ: dict[str, Any], rule: dict[str, Any]
) -> list[bytes]:
    request_id = str(uuid.uuid4())
    message = rule["message"]
    model = _service_model(service)
    query_compatible = bool(model is not None and model.metadata.get("awsQueryCompatible") is not None)
    headers = [("x-amzn-RequestId", request_id)]
    status = "400 Bad Request"
    if protocol in ("json", "cbor"):
        code = rule["code"] or "ThrottlingException"
        if query_compatible:
            headers.append(("x-amzn-query-error", f"{rule['code'] or 'Throttling'};Sender"))
        if protocol == "json":
            body = json.dumps({"__type": code, "message": message}).encode()
            content_type = environ.get("CONTENT_TYPE") or "application/x-amz-json-1.1"
            headers.append(("x-amzn-ErrorType", code))
        else:
            body = bytes([0xA2]) + _cbor_text("__type") + _cbor_text(code) + _cbor_text("message") + _cbor_text(message)
            content_type = "application/cbor"
            headers.append(("smithy-protocol", "rpc-v2-cbor"))
    elif protocol == "query":
        code = rule["code"] or "Throttling"
        body = (
            "<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        content_type = "text/xml"
    elif model is not None and model.protocol == "rest-xml":
        code = rule["code"] or "SlowDown"
        status = "503 Slow Down" if code == "SlowDown" else status
        body = (
            f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
        ).encode()
        content_type = "application/xml"
    else:
        code = rule["code"] or "ThrottlingException"
        body = json.dumps({"message": message}).encode()
        content_type = "application/json"
        headers.append(("x-amzn-ErrorType", code))
    headers += [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    start_response(status, headers)
    return [body]
