"""How the OpenAPI document describes the error answers of each group of routes."""

from __future__ import annotations

from typing import Any

from ..protocol import ErrorResponse


def errors(**statuses: str) -> dict[int | str, dict[str, Any]]:
    """``{status: {"model": ErrorResponse, "description": why}}`` for FastAPI's ``responses``."""
    return {int(code.removeprefix("e")): {"model": ErrorResponse, "description": why} for code, why in statuses.items()}


AUTH = {"e401": "no valid key"}
OPENAI = errors(**AUTH, e400="the body is malformed, a field is wrong (``param`` names it), or a policy blocked it",
                e404="no such model", e413="the body is too large", e429="a rate limit or budget (``Retry-After``)",
                e499="the client left before its request was read", e502="no upstream could answer",
                e503="the store is unreachable", e504="no answer within the time limit")
ADMIN = errors(**AUTH, e400="a field is wrong (``param`` names it)", e403="not an admin key", e404="no such tenant or key",
               e409="it exists already", e503="the store is unreachable")
