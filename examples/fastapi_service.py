"""A FastAPI service that generates videos and receives MiniMax's callbacks on its own app.

Run: ``PUBLIC_URL=https://your.host uvicorn examples.fastapi_service:app --port 8000``;
MiniMax then POSTs to ``https://your.host/minimax/...``. ``POST /videos`` with
``{"image": URL, "prompt": ...}`` starts a generation; ``GET /videos/{task_id}`` reports it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException

from minimax_s2v import (
    CallbackReceiver,
    Client,
    InvalidRequestError,
    MiniMaxError,
    TaskStatus,
    VideoRequest,
)

PUBLIC_URL = os.environ.get("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
receiver = CallbackReceiver(
    f"{PUBLIC_URL}/minimax",
    secret=os.environ.get("MINIMAX_CALLBACK_SECRET") or "example-secret-change-me-0123456789",
)
client = Client(receiver=receiver)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    async with client:
        yield


app = FastAPI(lifespan=lifespan)
app.mount("/minimax", receiver.asgi())


@app.post("/videos")
async def create_video(body: dict[str, Any]) -> dict[str, str]:
    """Start one generation."""
    try:
        task = await client.submit(VideoRequest(subject=body["image"], prompt=body.get("prompt")))
    except InvalidRequestError as error:
        raise HTTPException(status_code=422, detail=str(error)) from error
    except (KeyError, MiniMaxError) as error:
        raise HTTPException(status_code=400, detail=str(error)) from error
    return {"task_id": task.task_id}


@app.get("/videos/{task_id}")
async def video_status(task_id: str) -> dict[str, Any]:
    """What is known of a generation (from callbacks; a query if nothing is known yet)."""
    task = client.task(task_id)
    snapshot = task.snapshot or await client.get_task(task_id)
    video = task.video  # retrieved already when a success callback was confirmed
    if video is None and snapshot.status is TaskStatus.SUCCESS and snapshot.file_id:
        video = await client.get_file(snapshot.file_id)
    return {
        "task_id": task_id,
        "status": snapshot.status.value,
        "download_url": str(video.download_url) if video else None,
    }
