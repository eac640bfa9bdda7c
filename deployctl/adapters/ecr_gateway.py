"""ECR for pushing: a login from GetAuthorizationToken, and the repository a push goes to.

Callers get an EcrLogin and plain answers, never a response dict. Functions take the ECR
client; the caller wraps each call as it needs (a stage gives up on it when the run is
cancelled: deployctl.stages.cancel). Looking up an image's digest is
deployctl.adapters.aws.ecr_image_digest. Shapes:
https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_AuthorizationData.html.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass

from deployctl.adapters.aws import BotoClient, ClientError, error_code


@dataclass(frozen=True)
class EcrLogin:
    host: str  # the registry host, without scheme: 123456789012.dkr.ecr.eu-west-1.amazonaws.com
    user: str
    password: str


def login(ecr: BotoClient) -> EcrLogin:
    """The registry's credentials from the account's first authorization token."""
    data = ecr.get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    host = str(data["proxyEndpoint"]).removeprefix("https://").removeprefix("http://").rstrip("/")
    return EcrLogin(host, user, password)


def repository_exists(ecr: BotoClient, name: str) -> bool:
    try:
        ecr.describe_repositories(repositoryNames=[name])
    except ClientError as exc:
        if error_code(exc) != "RepositoryNotFoundException":
            raise
        return False
    return True


def create_repository(ecr: BotoClient, name: str, tags: Mapping[str, str]) -> bool:
    """A repository with immutable tags, scanned on push; False when it exists already (a
    parallel run made it first)."""
    try:
        ecr.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE",
                              imageScanningConfiguration={"scanOnPush": True},
                              tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    except ClientError as exc:
        if error_code(exc) != "RepositoryAlreadyExistsException":
            raise
        return False
    return True
