"""An app that brings its own multi-stage Dockerfile and HEALTHCHECK."""
from fastapi import FastAPI

app = FastAPI()
VERSION = "1"


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}


@app.get("/version")
def version() -> dict:
    return {"version": VERSION}
