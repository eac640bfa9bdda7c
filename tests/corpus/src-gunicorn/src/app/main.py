"""Code and requirements under src/, served by gunicorn with a config file on port 3100."""
from fastapi import FastAPI

app = FastAPI()
VERSION = "1"


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}


@app.get("/version")
def version() -> dict:
    return {"version": VERSION}
