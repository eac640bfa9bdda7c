"""No health or root route: only the API itself."""
from fastapi import FastAPI

app = FastAPI()
VERSION = "1"


@app.post("/v1/chat")
def chat(message: dict) -> dict:
    return {"reply": message.get("text", "")[::-1]}


@app.get("/version")
def version() -> dict:
    return {"version": VERSION}
