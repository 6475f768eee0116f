"""The OpenAI-compatible endpoints: chat completions, legacy completions, and the model list.

Bodies are parsed by hand (orjson, then the pydantic models of ``protocol``) instead of through
FastAPI's body parameters: it is faster, it lets the gateway forward the client's own JSON, and
it keeps every malformed body on the path to a 400 with OpenAI's error shape.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from . import cascade, proxy, streaming
from .auth import Caller
from .moderation import GatewayModeration, blocked_error
from .prefix_routing import PrefixRouter, uses_prefix_choice
from .response_cache import cached_response
from .errors import APIError, from_validation_error
from .protocol import ChatCompletionRequest, CompletionRequest, ModelCard, ModelList
from .state import GatewayState

router = APIRouter()
_Model = TypeVar("_Model", bound=BaseModel)
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


def validate(model: type[_Model], body: dict[str, Any]) -> _Model:
    try:
        return model.model_validate(body)
    except ValidationError as err:
        raise from_validation_error(err) from None


def _gateway(request: Request) -> GatewayState:
    return request.app.state.gateway


async def _forward(request: Request, spec: type[ChatCompletionRequest] | type[CompletionRequest], endpoint: str) -> Response:
    """Authenticate, then serve the call; every authenticated call leaves exactly one ledger record."""
    gateway = _gateway(request)
    caller = await gateway.auth.authenticate(request.headers.get("authorization"))
    state = request.scope["state"]
    state["tenant"] = caller.tenant
    call = proxy.Call(request_id=state["request_id"], tenant=caller.tenant, endpoint=endpoint, key_id=caller.key_id)
    try:
        response = await _serve(request, gateway, caller, call, spec)
    except APIError as err:
        call.status, call.error_code = err.status, err.code
        if call.ticket is not None:
            err.headers = {**call.ticket.headers(), **err.headers}
        await _record(gateway, call)
        raise
    if call.ticket is not None:
        response.headers.update(call.ticket.headers())
    if not call.stream or call.cache_hit:  # streams are recorded when they end
        await _record(gateway, call)
    return response


async def _record(gateway: GatewayState, call: proxy.Call) -> None:
    # Shielded: a client that hangs up must not cancel the write of what it cost.
    await asyncio.shield(gateway.accounting.record(call))
    _keep_label(gateway, call)
    call.release()


def _record_soon(gateway: GatewayState, call: proxy.Call) -> None:
    gateway.accounting.record_soon(call)
    _keep_label(gateway, call)
    call.release()


def _keep_label(gateway: GatewayState, call: proxy.Call) -> None:
    if gateway.labels is not None and call.route_kind == "cascade" and call.answered:
        gateway.labels.keep(call.body, call.tenant, call.escalated, call.confidence)


async def _moderate(gateway: GatewayState, moderation: GatewayModeration, caller: Caller, call: proxy.Call) -> None:
    """Input checks now (redacting the body, or refusing it); output checks armed for the answer."""
    rules = moderation.policy_for(caller.moderation)
    call.moderation, call.body = await moderation.check_request(call.body, rules, caller.tenant)
    if call.moderation.blocked:
        raise blocked_error(call.moderation, "input")
    if call.stream:
        call.stream_filter = moderation.stream_filter(rules)
        return
    if not moderation.checks_output(rules, False):
        return

    async def check_answer(answer: dict) -> dict:
        verdict, checked = await moderation.check_answer(answer, rules, caller.tenant)
        call.moderation.merge(verdict)  # type: ignore[union-attr]
        if verdict.blocked:
            raise blocked_error(verdict, "output")
        return checked

    call.check_answer = check_answer


async def _prefer_replica(router: PrefixRouter, call: proxy.Call) -> None:
    """For a self-hosted backend with several replicas: the one holding the prompt's prefix."""
    backend = call.route.targets[0].backend if call.route else None
    if backend is None or not uses_prefix_choice(backend):
        return
    call.prefer, call.expected_cached_tokens, keys = await router.choose(call.body, backend)
    if keys:
        def remember(attempt) -> None:  # type: ignore[no-untyped-def]
            if attempt.target.backend is backend and attempt.replica is not call.prefer:  # a retry moved it
                router.remember(keys, attempt.replica)
        call.on_served = remember


def _single(parsed: ChatCompletionRequest | CompletionRequest) -> bool:
    """The cascade judges one answer: requests for several (``n`` > 1) are routed, not cascaded."""
    return (parsed.n or 1) == 1


async def _answer(gateway: GatewayState, call: proxy.Call, include_usage: bool) -> Response:
    deadline_s = gateway.settings.server.request_timeout_s
    pool, billing = gateway.pool, gateway.billing
    if call.route_kind == "cascade":
        router = gateway.router
        assert router is not None
        flagship = call.escalation_route or pool.resolve(router.config.flagship)
        threshold = router.escalation_threshold
        if call.stream:
            holdback = router.config.cascade.holdback_tokens
            return await cascade.stream(pool, billing, call, flagship, threshold, holdback, include_usage, deadline_s)
        return await cascade.complete(pool, billing, call, flagship, threshold, deadline_s)
    if call.stream:
        return await streaming.stream(pool, billing, call, include_usage, deadline_s)
    return await proxy.complete(pool, billing, call, deadline_s)


async def _serve(request: Request, gateway: GatewayState, caller: Caller, call: proxy.Call,
                 spec: type[ChatCompletionRequest] | type[CompletionRequest]) -> Response:
    state = request.scope["state"]
    call.body = await read_json_object(request, gateway.settings.server.max_body_bytes)
    if isinstance(call.body.get("model"), str):
        call.requested_model = call.body["model"]
    parsed = validate(spec, call.body)
    call.stream = bool(parsed.stream)
    if gateway.moderation is not None:
        await _moderate(gateway, gateway.moderation, caller, call)
    router = gateway.router
    if router is not None and router.wants(parsed.model):
        call.decision = router.route(parsed.model, call.body, caller.tenant)
        call.route_kind = "cascade" if router.cascades(parsed.model, call.decision) and _single(parsed) else "router"
    elif parsed.model == "cascade" or parsed.model == "auto":
        raise APIError(404, f"model {parsed.model!r} needs a router (the `router` config block)",
                       code="model_not_found", param="model")
    call.route = gateway.pool.resolve(call.decision.model if call.decision else parsed.model)
    if call.route_kind == "cascade" and router is not None:
        call.escalation_route = gateway.pool.resolve(router.config.flagship)
    state["model"], state["stream"], state["route"] = call.route.model, call.stream, call.route_kind
    if gateway.prefix_router is not None:
        await _prefer_replica(gateway.prefix_router, call)
    await gateway.accounting.admit(call, caller.limits)
    include_usage = bool(call.stream and parsed.stream_options and parsed.stream_options.include_usage)
    if gateway.response_cache is not None:
        gateway.response_cache.plan(call, request.headers.get("cache-control"))
        stored = await gateway.response_cache.lookup(call)
        if stored is not None:
            return cached_response(call, stored, include_usage)
    if call.stream:
        call.finish = lambda: _record_soon(gateway, call)
    response = await _answer(gateway, call, include_usage)
    if call.cache_key is not None:
        response.headers["x-tollgate-cache"] = "miss"
    if not call.stream:
        state["upstream_seconds"] = call.upstream_seconds
    if call.moderation is not None and call.moderation.categories:
        response.headers["x-tollgate-moderation"] = call.moderation.summary()
    if call.decision is not None:
        response.headers["x-tollgate-router-score"] = f"{call.decision.score:.4f}"
        response.headers["x-tollgate-router-threshold"] = f"{call.decision.threshold:.4f}"
    return response


@router.post("/v1/chat/completions", tags=["openai"])
async def chat_completions(request: Request) -> Response:
    return await _forward(request, ChatCompletionRequest, "/chat/completions")


@router.post("/v1/completions", tags=["openai"])
async def completions(request: Request) -> Response:
    return await _forward(request, CompletionRequest, "/completions")


@router.get("/v1/models", tags=["openai"])
async def list_models(request: Request) -> Response:
    gateway = _gateway(request)
    await gateway.auth.authenticate(request.headers.get("authorization"))
    cards = [ModelCard(id=name, created=_STARTED, owned_by="tollgate") for name in gateway.pool.routes]
    return Response(ModelList(data=cards).model_dump_json(), media_type="application/json")
