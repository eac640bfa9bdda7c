"""src/ layout: gunicorn with a config file from the Procfile, health behind an APIRouter prefix."""
from fastapi import FastAPI

from chatbot.routers import health

VERSION = "1"
application = FastAPI(title="chatbot")
application.include_router(health.router)


@application.get("/version")
async def version() -> dict:
    return {"version": VERSION}
