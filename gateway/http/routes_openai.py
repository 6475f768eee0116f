"""The OpenAI-compatible endpoints: chat completions, legacy completions, and the model list.

A route only speaks HTTP: it hands the pipeline what it needs of the request (and a way to read
the body, once the caller is known), and turns the answer into a response. Bodies are read here by
hand (orjson, with a size limit) rather than through FastAPI's body parameters: it is faster, it
lets the gateway forward the client's own JSON, and every malformed body stays a 400 in OpenAI's
shape.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from ..errors import APIError
from ..pipeline import Incoming
from ..protocol import CHAT, COMPLETIONS, EMBEDDINGS, ModelCard, ModelList
from ..state import GatewayState
from . import docs
from .responses import response_of

router = APIRouter(responses=docs.OPENAI)
_STARTED = int(time.time())


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object, refusing more than ``limit`` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        # Nobody is left to answer; the status (nginx's "client closed request") is for the record.
        raise APIError(499, "the client closed the connection before its request was read",
                       code="client_disconnected") from None
    try:
        body = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        raise APIError(400, "could not parse the request body as JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    return body


def _too_large(limit: int) -> APIError:
    return APIError(413, f"request body is larger than {limit} bytes", code="request_too_large")


def _gateway(request: Request) -> GatewayState:
    return request.app.state.gateway


async def _serve(request: Request, endpoint: str) -> Response:
    gateway = _gateway(request)
    headers = request.headers
    incoming = Incoming(request.scope["state"]["request_id"], endpoint, headers.get("authorization"),
                        headers.get("cache-control"),
                        partial(read_json_object, request, gateway.settings.server.max_body_bytes))
    return response_of(await gateway.pipeline.serve(incoming))


@router.post("/v1/chat/completions", tags=["openai"])
async def chat_completions(request: Request) -> Response:
    return await _serve(request, CHAT)


@router.post("/v1/completions", tags=["openai"])
async def completions(request: Request) -> Response:
    return await _serve(request, COMPLETIONS)


@router.post("/v1/embeddings", tags=["openai"])
async def embeddings(request: Request) -> Response:
    """Forwarded to the model's backend, priced by its input tokens, recorded and limited like any
    call. Not routed (name a model, not ``auto``) and not moderated."""
    return await _serve(request, EMBEDDINGS)


@router.get("/v1/models", tags=["openai"])
async def list_models(request: Request) -> Response:
    gateway = _gateway(request)
    caller = await gateway.auth.authenticate(request.headers.get("authorization"))
    cards = [ModelCard(id=name, created=_STARTED, owned_by="tollgate") for name in gateway.pool.routes
             if caller.may_call(name)]
    return Response(ModelList(data=cards).model_dump_json(), media_type="application/json")
