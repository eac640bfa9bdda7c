"""A poetry project: dependencies in [tool.poetry.dependencies], locked in poetry.lock."""
from fastapi import FastAPI

app = FastAPI()
VERSION = "1"


@app.get("/health/ready")
def ready() -> dict:
    return {"ready": True}


@app.get("/version")
def version() -> dict:
    return {"version": VERSION}
