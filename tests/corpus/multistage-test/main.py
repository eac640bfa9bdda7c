"""Flat FastAPI app with its own Dockerfile whose last stage is `FROM production AS test`."""
from fastapi import FastAPI

VERSION = "1"
app = FastAPI()


@app.get("/health")
def health() -> dict:
    return {"ok": True}


@app.get("/version")
def version() -> dict:
    return {"version": VERSION}
