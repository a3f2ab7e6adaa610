"""The baseline for the web benchmark: bare FastAPI endpoints on the same
routes, served by uvicorn the same way as ``adieu serve``, doing no work."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, PlainTextResponse

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
PAGE = "<!doctype html><html lang='en'><title>Unsubscribe</title><h1>Unsubscribe</h1></html>"


@app.get("/u/{token}")
async def landing(token: str) -> HTMLResponse:
    return HTMLResponse(PAGE)


@app.post("/u/{token}")
async def one_click(token: str) -> PlainTextResponse:
    return PlainTextResponse("You are unsubscribed.")
