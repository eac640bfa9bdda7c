"""Flask served by gunicorn; a /healthz route."""
import os

from flask import Flask

app = Flask(__name__)
app.config["GREETING"] = os.environ.get("GREETING", "hello")
VERSION = "1"


@app.route("/healthz")
def healthz():
    return {"ok": True}


@app.route("/version")
def version():
    return {"version": VERSION, "greeting": app.config["GREETING"]}
