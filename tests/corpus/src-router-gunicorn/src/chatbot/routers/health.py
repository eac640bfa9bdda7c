from fastapi import APIRouter

router = APIRouter(prefix="/api", tags=["health"])


@router.get("/healthcheck")
async def healthcheck() -> dict:
    return {"status": "ok"}
