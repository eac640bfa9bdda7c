"""Backend in backend/, with its own Dockerfile and a .env.sample; a frontend next to it."""
import os

from fastapi import FastAPI

OPENAI_API_KEY = os.environ["OPENAI_API_KEY"]  # refuses to start without it
MODEL = os.getenv("MODEL_NAME", "gpt-4o-mini")
app = FastAPI()
VERSION = "1"


@app.get("/api/health")
def health() -> dict:
    return {"status": "ok", "key_set": bool(OPENAI_API_KEY)}


@app.get("/version")
def version() -> dict:
    return {"version": VERSION, "model": MODEL}
