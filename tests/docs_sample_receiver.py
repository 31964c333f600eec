"""The callback receiver from MiniMax's documentation (FastAPI), kept as the docs give it.

Used to show that the emulator works with a receiver written only from the public docs, and
as the baseline of the receiver benchmark. Run: ``uvicorn tests.docs_sample_receiver:app``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request

app = FastAPI()


@app.post("/get_callback")
async def get_callback(request: Request) -> dict[str, Any]:
    """Echo the challenge; acknowledge a status update."""
    try:
        json_data = await request.json()
        challenge = json_data.get("challenge")
        if challenge is not None:
            # is a verification request, just return the challenge
            return {"challenge": challenge}
        # is a callback request, do your own logic here
        return {"status": "success"}
    except Exception as e:
        raise HTTPException(status_code=500, detail=str(e)) from e
