"""`deployctl history`: parse, call deployctl.app.history, render."""

from __future__ import annotations

import typer

from deployctl.commands.common import ENV_OPTION, FILE_OPTION, JSON_OPTION, load, print_json


def history(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Show at most this many releases."),
    name: str | None = typer.Option(None, "--name", help="A preview copy's name, for environments with "
                                                          "preview: true (e.g. pr-42)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Releases of one environment, newest first: outcome, git sha, image digest, who, when, duration.

    Read from ECS task-definition tags (Docker labels for the local target): no state file.
    JSON (schema deployctl.history/v1): {schema, app, env, releases: [{id, outcome, kind, source,
    git_sha, image_digest, image, who, started_at, finished_at, duration_s, detail, current,
    services: {name: {task_definition, revision, family, outcome}}, frontend: {provider, id, url, state,
    target, release, image_digest, healthy} (with a `frontend:` section)}]}.

    \b
    Examples:  deployctl history --env staging
               deployctl history --env prod --limit 5 --json
               deployctl history --env preview --name pr-42
    """
    from deployctl.app import history as use  # lazy: pydantic and the config stay off --help
    from deployctl.app import previews
    from deployctl.render.text import duration, outcome_text, short, table  # lazy: --help loads only what it needs

    cfg = load(file, env)
    if name is None and cfg.environment.preview:
        raise previews.name_required(cfg, "history")
    found = use.history(previews.target_for(cfg, name), limit, cfg if name is None else None)
    if as_json:
        print_json(use.history_doc(cfg, found))
        return
    if not found.releases:
        copy = f" --name {name}" if name else ""
        typer.echo(f"{cfg.app}/{env}{f' preview {name}' if name else ''}: no releases yet "
                   f"(deploy with `deployctl run --env {env}{copy}`)")
        return
    rows = [[("* " if r.id == found.current else "  ") + r.id, outcome_text(r.outcome), r.kind,
             (r.git_sha or "")[:12], short(r.image_digest), r.who, r.started_at, duration(r.duration_s)]
            for r in found.releases]
    headers = ["release", "outcome", "kind", "git", "digest", "who", "started", "took"]
    # Companion targets (a frontend on Vercel): what ran beside each release, one column each.
    for key in dict.fromkeys(k for r in found.releases for k in found.attached.get(r.id, {})):
        headers.append(key)
        for row, r in zip(rows, found.releases, strict=True):
            part = found.attached.get(r.id, {}).get(key) or {}
            row.append(" ".join(str(part[k]) for k in ("id", "state", "url") if part.get(k)) or "-")
    for line in table(headers, rows):
        typer.echo(line)
    if found.current is not None:
        typer.echo("* = running now")


def register(app: typer.Typer) -> None:
    app.command()(history)
