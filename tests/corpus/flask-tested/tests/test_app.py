from app import app


def test_ready() -> None:
    assert app.test_client().get("/ready").json == {"ready": True}
