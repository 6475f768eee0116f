"""Answers as HTTP responses: the JSON body or the SSE stream, and Tollgate's headers.

Every answer says which model and backend gave it; whole answers also say what they cost and
what the flagship alone would have cost (a stream's cost is known only when it ends, after its
headers went out: it is in the ledger). Callers with limits get OpenAI's ``x-ratelimit-*``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from cache import exact
from wire import sse

from ..call import Outcome, Plan, verdict_of
from ..pipeline import Answer, StreamedAnswer

NO_CACHE = {"cache-control": "no-cache"}


def answer_headers(plan: Plan, outcome: Outcome) -> dict[str, str]:
    headers = plan.ticket.headers()
    routing = plan.routing
    if outcome.cached is not None:
        headers |= {"x-tollgate-cache": "hit", "x-tollgate-cost-usd": "0.00000000",
                    "x-tollgate-model": routing.route.model, "x-tollgate-backend": "cache"}
    elif outcome.served:
        served = outcome.served[-1]
        headers |= {"x-tollgate-model": served.model, "x-tollgate-backend": served.backend}
        if plan.cache is not None:
            headers["x-tollgate-cache"] = "miss"
        price = outcome.price
        if price is not None:
            headers["x-tollgate-cost-usd"] = f"{price.cost_usd:.8f}"
            headers["x-tollgate-cost-source"] = price.source
            if price.flagship_cost_usd is not None:
                headers["x-tollgate-flagship-cost-usd"] = f"{price.flagship_cost_usd:.8f}"
    if routing.escalation is not None and outcome.cached is None:
        headers["x-tollgate-escalated"] = "true" if outcome.escalated else "false"
        if outcome.confidence is not None:
            headers["x-tollgate-cascade-confidence"] = f"{outcome.confidence:.4f}"
        if outcome.escalation_reason is not None:
            headers["x-tollgate-escalation-reason"] = outcome.escalation_reason
    verdict = verdict_of(plan, outcome)
    if verdict is not None and verdict.categories:
        headers["x-tollgate-moderation"] = verdict.summary()
    if routing.decision is not None:
        headers["x-tollgate-router-score"] = f"{routing.decision.score:.4f}"
        headers["x-tollgate-router-threshold"] = f"{routing.decision.threshold:.4f}"
        headers["x-tollgate-router-version"] = routing.decision.router
    return headers


def response_of(answer: Answer | StreamedAnswer) -> Response:
    if isinstance(answer, StreamedAnswer):
        return StreamedResponse(answer)
    headers = answer_headers(answer.plan, answer.outcome)
    if answer.plan.request.stream:  # a cache hit for a streamed request: replayed as a stream
        return StreamingResponse(_replay(answer), media_type="text/event-stream", headers=headers | NO_CACHE)
    return Response(orjson.dumps(answer.body), media_type="application/json", headers=headers)


async def _replay(answer: Answer) -> AsyncIterator[bytes]:
    for chunk in exact.stream_chunks(answer.body, answer.plan.request.include_usage):
        yield sse.encode(orjson.dumps(chunk))
    yield sse.DONE_EVENT


class StreamedResponse(StreamingResponse):
    """An SSE response whose answer is closed once the response is over, however it ended: the
    client may leave before the first byte, and an async generator that never started never runs
    its own cleanup."""

    def __init__(self, answer: StreamedAnswer) -> None:
        super().__init__(answer, media_type="text/event-stream", headers=answer_headers(answer.plan, answer.head) | NO_CACHE)
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.answer.close()
