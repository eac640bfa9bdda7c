"""deployctl.project: what `init` reads from a project, on the corpus layouts and small cases.

Each assertion is a choice the issue found wrong before: requirements under src/, the start
command, a lint stage without ruff, port 8000 and /health/ready by default, a Dockerfile refused.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from deployctl import project
from deployctl.project import dockerfile, envvars, routes
from deployctl.render import init_files

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def detect(layout: str) -> project.Project:
    return project.detect(CORPUS / layout)


def test_src_layout_with_gunicorn_config_on_3100() -> None:
    p = detect("src-gunicorn")
    assert p.deps.files == ("src/requirements.txt",)
    assert (p.port, p.port_source) == (3100, "src/gunicorn.conf.py")
    assert p.entry.start == ("gunicorn", "-c", "src/gunicorn.conf.py", "app.main:app")
    assert p.entry.import_root == "src" and p.health_path == "/health"
    text = init_files.dockerfile(p, choices(p))
    assert "COPY src/requirements*.txt ./" in text and "PYTHONPATH=/app/src" in text
    assert 'CMD ["gunicorn", "-c", "src/gunicorn.conf.py", "app.main:app"]' in text


def test_lock_files_choose_the_manager() -> None:
    poetry, uv = detect("poetry-app"), detect("uv-app")
    assert (poetry.deps.manager, poetry.deps.lock) == ("poetry", "poetry.lock")
    assert (uv.deps.manager, uv.deps.lock) == ("uv", "uv.lock")
    assert "poetry install --only main --no-root" in init_files.dockerfile(poetry, choices(poetry))
    assert "uv sync --frozen --no-dev" in init_files.dockerfile(uv, choices(uv))
    assert uv.entry.framework == "starlette" and uv.health_path == "/healthz"


@pytest.mark.parametrize(("layout", "framework", "start"), [
    ("flat-fastapi", "fastapi", ("uvicorn", "main:app", "--host", "0.0.0.0", "--port", "8000")),
    ("flask-gunicorn", "flask", ("gunicorn", "--bind", "0.0.0.0:8000", "app:app")),
    ("django-app", "django", ("gunicorn", "--bind", "0.0.0.0:8000", "mysite.wsgi:application")),
])
def test_framework_and_start_command(layout: str, framework: str, start: tuple[str, ...]) -> None:
    p = detect(layout)
    assert (p.entry.framework, p.entry.start) == (framework, start)


def test_an_existing_dockerfile_is_adopted_with_its_port_and_healthcheck() -> None:
    p = detect("own-dockerfile")
    assert p.dockerfile is not None
    assert (p.dockerfile.final_stage, p.dockerfile.expose, p.port) == ("final", (8080,), 8080)
    assert p.health_path == "/health" and p.dockerfile.cmd and p.dockerfile.cmd[0] == "/venv/bin/uvicorn"


def test_subdirectory_app_with_env_sample_and_a_frontend() -> None:
    p = detect("subdir-backend")
    assert p.app_dir == "backend" and p.dockerfile and p.dockerfile.path == "backend/Dockerfile"
    assert p.env.secrets == ("OPENAI_API_KEY",)  # never its sample value
    assert p.env.env == {"MODEL_NAME": "gpt-4o-mini", "LOG_LEVEL": "info"}
    assert p.env.sample_file == "backend/.env.sample" and p.frontend == "frontend"
    assert p.health_path == "/api/health"


def test_no_health_route_means_no_invented_path() -> None:
    p = detect("no-health")
    assert p.health_path is None
    yaml_text = init_files.deploy_yaml(choices(p))
    assert "socket.create_connection" in yaml_text and "/health/ready" not in yaml_text


def test_no_lint_or_test_tool_means_no_stage() -> None:
    p = detect("flat-fastapi")
    assert p.tools.lint == () and p.tools.test == ()
    assert "\nstages:" not in init_files.deploy_yaml(choices(p))


def test_tools_the_project_uses(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("def test_a():\n    pass\n")
    (tmp_path / "requirements.txt").write_text("flask\n")
    (tmp_path / "requirements-dev.txt").write_text("-r requirements.txt\npytest\n")
    (tmp_path / ".flake8").write_text("[flake8]\nmax-line-length = 100\n")
    t = project.detect(tmp_path).tools
    assert (t.lint, t.test) == (("python -m flake8",), ("python -m pytest -q tests",))


def test_build_essential_only_for_dependencies_that_compile(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    (tmp_path / "requirements.txt").write_text("flask==3.1.0\n")
    wheels = project.detect(tmp_path)
    assert wheels.deps.needs_compiler == ()
    text = init_files.dockerfile(wheels, choices(wheels))
    assert "--only-binary=:all:" in text  # compilers only as the fallback of a failed install
    (tmp_path / "requirements.txt").write_text("flask==3.1.0\npsycopg2==2.9.10\n")
    compiled = project.detect(tmp_path)
    assert compiled.deps.needs_compiler == ("psycopg2",)
    builder = init_files.dockerfile(compiled, choices(compiled)).split("AS runtime")[0]
    assert "apt-get install -y --no-install-recommends build-essential" in builder


def test_procfile_and_deploying_workflow(tmp_path: Path) -> None:
    (tmp_path / "api.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    (tmp_path / "requirements.txt").write_text("fastapi\nuvicorn\n")
    (tmp_path / "Procfile").write_text("web: uvicorn api:app --host 0.0.0.0 --port $PORT\n")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "ship.yml").write_text("steps:\n  - run: docker push x/y\n")
    p = project.detect(tmp_path)
    assert p.entry.start_source == "Procfile" and p.entry.start[-1] == "8000"
    assert p.deploying_workflows == (".github/workflows/ship.yml",)
    assert any("already deploys" in w for w in p.warnings)


def test_env_vars_from_code() -> None:
    src = 'import os\nA = os.getenv("MODEL_NAME", "small")\nB = os.environ["HF_TOKEN"]\nC = os.environ.get("X")\n'
    assert [m.group(1) or m.group(4) for m in envvars._CODE.finditer(src)] == ["MODEL_NAME", "HF_TOKEN", "X"]
    assert envvars.is_secret("HF_TOKEN") and envvars.is_secret("DATABASE_URL") and not envvars.is_secret("MODEL")


def test_token_limits_are_settings_and_connection_strings_are_secrets(tmp_path: Path) -> None:
    """What init puts under env (with the sample's value) and what under secrets: an AI app's
    MAX_TOKENS is a setting; its API key, database URL and anything shaped like a credential are not."""
    (tmp_path / "main.py").write_text('import os\nMAX = os.getenv("MAX_TOKENS", "1024")\n'
                                      'TTL = os.getenv("AUTH_TOKEN_TTL")\nK = os.environ["OPENAI_API_KEY"]\n')
    (tmp_path / ".env.example").write_text("MAX_TOKENS=2048\nAUTH_TOKEN_TTL=3600\nOPENAI_API_KEY=sk-...\n"
                                           "DATABASE_URL=postgres://app@db/app\nSENTRY_DSN=\n"
                                           "CALLBACK=https://bot:s3cr3tpassw0rd@hooks.example.com/in\n")
    (tmp_path / "keys.py").write_text("\n".join([
        "import os", 'A = os.getenv("AWS_ACCESS_KEY_ID")', 'B = os.getenv("OPENAI_API_KEY_2")',
        'C = os.getenv("API_KEY_HEADER", "X-Api-Key")', 'D = os.getenv("NUM_TOKENS", "8")',
        'E = os.getenv("BROKER", "amqp://guest:s3cretpassw0rd@mq:5672//")', ""]))
    found = envvars.detect(tmp_path, ".")
    assert found.env == {"MAX_TOKENS": "2048", "AUTH_TOKEN_TTL": "3600", "API_KEY_HEADER": "X-Api-Key",
                         "NUM_TOKENS": "8"}
    assert set(found.secrets) == {"OPENAI_API_KEY", "DATABASE_URL", "SENTRY_DSN", "CALLBACK", "AWS_ACCESS_KEY_ID",
                                  "OPENAI_API_KEY_2", "BROKER"}


def test_health_route_preference() -> None:
    assert routes.health_route(["/", "/health", "/health/ready", "/v1/chat"]) == "/health/ready"
    assert routes.health_route(["/", "/items"]) is None


def test_dockerfile_parse_shell_form_and_healthcheck() -> None:
    d = dockerfile.parse("Dockerfile", "FROM a AS b\nFROM b\nEXPOSE 3000/tcp\n"
                                       "HEALTHCHECK CMD curl -f http://localhost:3000/healthz || exit 1\n"
                                       "CMD gunicorn -b :3000 app:app\n")
    assert d.stages == ("b", "") and d.final_stage is None and d.expose == (3000,)
    assert (d.health_path, d.health_port) == ("/healthz", 3000)
    assert d.cmd == ("gunicorn", "-b", ":3000", "app:app")


def choices(p: project.Project) -> init_files.Choices:
    return init_files.Choices(app="demo", region="us-east-1", registry="ecr", port=p.port, health_path=p.health_path,
                              start=p.entry.start or ("python", "app.py"), local_port=18000, lint=p.tools.lint,
                              test=p.tools.test, env=dict(p.env.env), secrets=p.env.secrets)


def test_stages_run_in_the_image_only_where_the_config_has_the_key() -> None:
    p = detect("flask-tested")
    assert p.tools.lint == ("python -m ruff check .",) and p.tools.test == ("python -m pytest -q tests",)
    in_image = init_files.deploy_yaml(replace(choices(p), stages_in_image=True))
    assert 'test: {run: ["python -m pytest -q tests"], in: image, target: test' in in_image
    on_host = init_files.deploy_yaml(choices(p))
    assert "in: image" not in on_host and "run on this machine" in on_host
    assert "\nFROM runtime AS test\n" in init_files.dockerfile(p, choices(p))


def test_an_adopted_dockerfile_builds_the_stage_that_serves_not_its_last_test_stage() -> None:
    p = detect("multistage-test")  # builder, production, then `FROM production AS test` with CMD pytest
    assert p.dockerfile is not None and p.dockerfile.stages == ("builder", "production", "test")
    assert (p.dockerfile.serving, p.dockerfile.test_stage) == ("production", "test")
    assert "starts the server" in p.dockerfile.serving_reason
    assert p.dockerfile.cmd == ("uvicorn", "main:app", "--host", "0.0.0.0", "--port", "${PORT}")
    assert p.port == 8000 and p.health_path == "/health"
    # pytest is installed only in the Dockerfile's test stage: the tests are still found, and run there
    assert p.tools.test == ("python -m pytest -q",) and "test" in p.tools.source


@pytest.mark.parametrize(("text", "serving", "test"), [
    ("FROM python:3.11-slim AS base\nCMD [\"gunicorn\", \"app:app\"]\n"
     "FROM base AS dev\nCMD [\"uvicorn\", \"app:app\", \"--reload\"]\n", "base", None),
    ("FROM python:3.11-slim AS builder\nRUN pip install x\n"
     "FROM python:3.11-slim AS runtime\nCMD [\"python\", \"-m\", \"x\"]\n", "runtime", None),
    ("FROM python:3.11-slim AS app\nCMD uvicorn m:app\nFROM app AS tests\nRUN pip install pytest ruff\n",
     "app", "tests"),
    ("FROM python:3.11-slim\nCMD [\"python\", \"app.py\"]\n", None, None),
])
def test_serving_and_test_stages(text: str, serving: str | None, test: str | None) -> None:
    d = dockerfile.parse("Dockerfile", text)
    assert (d.serving, d.test_stage) == (serving, test)


def test_a_test_stage_inherits_and_names_what_it_copies() -> None:
    d = dockerfile.parse("Dockerfile", (CORPUS / "multistage-test" / "Dockerfile").read_text())
    assert d.installs("test", "pytest") and not d.installs("production", "pytest")
    assert d.sources == ("requirements.txt", "main.py", "tests")  # never the --from=builder copy
    assert d.stage("test") is not None and d.stage("test").expose == (8000,)  # type: ignore[union-attr]


def _procfile_app(root: Path, web: str, config: dict[str, str]) -> project.Project:
    (root / "src" / "chat").mkdir(parents=True)
    (root / "src" / "chat" / "__init__.py").write_text("")
    (root / "src" / "chat" / "main.py").write_text("from fastapi import FastAPI\napplication = FastAPI()\n")
    (root / "src" / "requirements.txt").write_text("fastapi\nuvicorn\ngunicorn\n")
    (root / "Procfile").write_text(f"web: {web}\n")
    for name, text in config.items():
        (root / name).write_text(text)
    return project.detect(root)


GUNICORN_ENV_BIND = 'import os\nbind = f"0.0.0.0:{os.getenv(\'PORT\', \'3100\')}"\nworkers = 2\n'


def test_a_procfile_gunicorn_reads_the_port_from_its_config_file(tmp_path: Path) -> None:
    """`-c src/gunicorn_config.py` binding 0.0.0.0:$PORT with default 3100: the app listens on 3100."""
    p = _procfile_app(tmp_path, "gunicorn --chdir src -c src/gunicorn_config.py chat.main:application",
                      {"src/gunicorn_config.py": GUNICORN_ENV_BIND})
    assert (p.port, p.port_source) == (3100, "Procfile: bind in src/gunicorn_config.py")
    assert p.entry.server_config == "src/gunicorn_config.py"
    assert p.entry.start == ("gunicorn", "--chdir", "src", "-c", "src/gunicorn_config.py", "chat.main:application")


@pytest.mark.parametrize(("web", "config", "port", "tail"), [
    # the config path relative to --chdir, a literal bind on localhost: rebound to every interface
    ("gunicorn --chdir src --config=gunicorn.py chat.main:application",
     {"src/gunicorn.py": 'bind = "127.0.0.1:3200"\n'}, 3200, ("--bind", "0.0.0.0:3200")),
    # gunicorn's default ./gunicorn.conf.py, bind built by concatenation
    ("gunicorn chat.main:application", {"gunicorn.conf.py": 'import os\nbind = "0.0.0.0:" + '
                                        'os.environ.get("PORT", 3300)\n'}, 3300, ("chat.main:application",)),
    # a flag wins over the file; $PORT with a shell default is that default
    ("gunicorn -b 0.0.0.0:${PORT:-5000} -c src/g.py chat.main:application",
     {"src/g.py": 'bind = "0.0.0.0:3100"\n'}, 5000, ("chat.main:application",)),
    ("uvicorn chat.main:application --host 0.0.0.0 --port ${PORT:-7000}", {}, 7000, ("7000",)),
])
def test_procfile_ports(tmp_path: Path, web: str, config: dict[str, str], port: int, tail: tuple[str, ...]) -> None:
    p = _procfile_app(tmp_path, web, config)
    assert p.port == port and p.entry.start is not None
    assert p.entry.start[-len(tail):] == tail


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_router_prefixes_make_the_health_path_the_app_serves(tmp_path: Path) -> None:
    """APIRouter(prefix="/api") with @router.get("/healthcheck"), included from another module:
    the app serves /api/healthcheck, and /healthcheck is a 404."""
    _write(tmp_path, {
        "src/requirements.txt": "fastapi\nuvicorn\n",
        "src/chat/__init__.py": "", "src/chat/routers/__init__.py": "",
        "src/chat/main.py": "from fastapi import FastAPI\nfrom chat.routers import health\n\n"
                            "application = FastAPI()\napplication.include_router(health.router)\n\n\n"
                            "@application.get('/version')\ndef version():\n    return {}\n",
        "src/chat/routers/health.py": "from fastapi import APIRouter\n\n"
                                      "router = APIRouter(prefix=\"/api\", tags=[\"health\"])\n\n\n"
                                      "@router.get(\"/healthcheck\")\nasync def healthcheck():\n    return {}\n",
    })
    p = project.detect(tmp_path)
    assert p.health_path == "/api/healthcheck"
    assert set(p.routes) == {"/api/healthcheck", "/version"}


def test_include_prefixes_nest_through_relative_imports_and_blueprints(tmp_path: Path) -> None:
    _write(tmp_path, {
        "requirements.txt": "fastapi\nuvicorn\n",
        "app/__init__.py": "",
        "app/main.py": "from fastapi import FastAPI\nfrom .api import api as api_router\n\n"
                       "app = FastAPI()\napp.include_router(api_router, prefix=\"/v1\")\n",
        "app/api.py": "from fastapi import APIRouter\nfrom .status import router as status_router\n\n"
                      "api = APIRouter(prefix=\"/internal\")\napi.include_router(status_router, prefix=\"/status\")\n",
        "app/status.py": "from fastapi import APIRouter\nrouter = APIRouter()\n\n\n"
                         "@router.get(\"/ready\")\ndef ready():\n    return {}\n\n\n"
                         "@router.get(\"/items/{item_id}\")\ndef item(item_id: int):\n    return {}\n",
    })
    assert project.detect(tmp_path).routes == ("/v1/internal/status/ready",)
    flask = ("from flask import Blueprint, Flask\nbp = Blueprint('ops', __name__, url_prefix='/ops')\n"
             "app = Flask(__name__)\n\n\n@bp.route('/healthz')\ndef hz():\n    return ''\n\n\n")
    assert routes.project_routes({"web": flask + "app.register_blueprint(bp)\n"}) == ["/ops/healthz"]
    # Flask: a url_prefix given at registration replaces the blueprint's own
    assert routes.project_routes({"web": flask + "app.register_blueprint(bp, url_prefix='/x')\n"}) == ["/x/healthz"]
