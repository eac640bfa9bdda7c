from chatbot.main import application
from fastapi.testclient import TestClient


def test_healthcheck_behind_the_router_prefix() -> None:
    assert TestClient(application).get("/api/healthcheck").status_code == 200
