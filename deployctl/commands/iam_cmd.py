"""iam-policy: the least-privilege policy (and OIDC trust policy) of the CI role for one environment."""

from __future__ import annotations

import json

import typer

from deployctl.commands.common import ENV_OPTION, FILE_OPTION, JSON_OPTION, load, print_json
from deployctl.errors import UsageError


def iam_policy(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    as_json: bool = JSON_OPTION,
    repo: str | None = typer.Option(None, "--repo", help="GitHub repository owner/name: also print the OIDC "
                                    "trust policy for it."),
    account: str | None = typer.Option(None, "--account", help="AWS account id (default: the one in the "
                                       "environment's role ARNs)."),
    gh_environment: str | None = typer.Option(None, "--github-environment",
                                              help="GitHub environment the deploying job runs in "
                                                   "(default: the env name; prod → production)."),
    lock_table: str = typer.Option("deployctl-locks", "--lock-table",
                                    help="DynamoDB table of the deploy lock."),
) -> None:
    """Print the IAM policy the CI role needs to deploy ENV, and with --repo its OIDC trust policy.

    The policy grants exactly this deploy.yaml's ECR repository, ECS services and task-definition
    families, iam:PassRole on the two task roles (to ecs-tasks only) and describe-only access to
    the named secrets; the notes say where AWS forces "*". An environment with promote_from
    also gets read-only access to its source environment's services (promote reads them).

    \b
    Examples:  deployctl iam-policy --env staging --repo acme/chat-api
               deployctl iam-policy --env prod --json | jq .policy > policy.json
    """
    from deployctl.render import iam  # lazy: pydantic and the config stay off --help
    from deployctl.targets import target_class  # lazy: pydantic and the config stay off --help

    cfg = load(file, env)
    if not target_class(cfg.environment.target).needs_ci_role:
        raise UsageError(f"environment '{env}' deploys to the local Docker engine: it needs no IAM role",
                         hint="run iam-policy for an ECS environment, e.g. --env staging")
    acct = account or iam.account_from_config(cfg)
    if not acct or not acct.isdigit() or len(acct) != 12:
        raise UsageError(f"no 12-digit AWS account id for environment '{env}'",
                         hint="pass --account 123456789012")
    source = None
    if cfg.environment.promote_from:
        # `promote SRC ENV` runs with ENV's role and reads SRC first: its policy names SRC's resources.
        source = load(file, cfg.environment.promote_from)
    policy = iam.ci_policy(cfg, acct, source=source, lock_table=lock_table)
    trust = None
    subs: list[str] = []
    if repo:
        try:
            subs = iam.subjects(cfg, repo, gh_environment)
        except ValueError as exc:
            raise UsageError(str(exc), hint="--repo owner/name, e.g. --repo acme/chat-api") from None
        trust = iam.trust_policy(acct, subs)
    if as_json:
        print_json({"schema": "deployctl.iam/v1", "env": env, "account": acct, "policy": policy,
                    "trust_policy": trust, "oidc_subjects": subs, "notes": iam.notes(cfg)})
        return

    typer.echo(f"# IAM policy for the CI role of {cfg.app}/{env} (attach as an inline or managed policy)")
    typer.echo(json.dumps(policy, indent=2))
    if trust:
        typer.echo(f"\n# Trust policy (GitHub OIDC, {repo}); the account needs the IAM OIDC provider for "
                   f"{iam.GITHUB_OIDC} with audience sts.amazonaws.com")
        typer.echo(json.dumps(trust, indent=2))
    else:
        typer.echo("\n# add --repo owner/name for the GitHub OIDC trust policy")
    typer.echo("\n# Notes")
    for note in iam.notes(cfg):
        typer.echo(f"# - {note}")


def register(app: typer.Typer) -> None:
    app.command("iam-policy")(iam_policy)
