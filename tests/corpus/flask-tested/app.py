"""Flask + gunicorn with the project's own ruff and pytest: init writes lint and test stages."""

import os

from flask import Flask

app = Flask(__name__)
VERSION = "1"


@app.get("/ready")
def ready() -> dict:
    return {"ready": True}


@app.get("/version")
def version() -> dict:
    return {"version": VERSION, "region": os.environ.get("REGION_NAME", "local")}
