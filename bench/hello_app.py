"""The baseline of bench/gateway.py: a bare FastAPI app answering one small JSON document."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
