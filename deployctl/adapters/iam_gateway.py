"""IAM, as preflight asks it: does a role exist. Takes the IAM client.
(The OIDC provider bootstrap looks for is deployctl.adapters.cfn_gateway's.)
Error codes: https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetRole.html.
"""

from __future__ import annotations

from deployctl.adapters.aws import BotoClient, ClientError, is_not_found


def role_exists(iam: BotoClient, name: str) -> bool:
    """`name` without the role's path (GetRole takes the bare name)."""
    try:
        iam.get_role(RoleName=name)
    except ClientError as exc:
        if is_not_found(exc):  # NoSuchEntity
            return False
        raise
    return True
