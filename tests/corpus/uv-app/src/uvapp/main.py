"""A uv project with uv.lock; the package lives under src/."""
import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

VERSION = "1"
LOG_LEVEL = os.getenv("LOG_LEVEL", "info")


async def health(request):
    return JSONResponse({"ok": True})


async def version(request):
    return JSONResponse({"version": VERSION})


app = Starlette(routes=[Route("/healthz", health), Route("/version", version)])
