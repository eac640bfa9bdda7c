"""A chat backend: FastAPI app object at module level, requirements.txt next to it."""
import os

from fastapi import FastAPI

app = FastAPI(title="flat-fastapi")
MODEL = os.getenv("MODEL_NAME", "gpt-4o-mini")
VERSION = "1"


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}


@app.get("/version")
def version() -> dict:
    return {"version": VERSION, "model": MODEL}
