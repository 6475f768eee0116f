"""Labels: cascade outcomes kept as router training labels: the prompt, whether it was escalated,
why, and the cheap answer's confidence.

An escalation means the cheap answer looked unsure, so the flagship was needed ("strong wins");
an answer that was kept means the cheap model did (a tie). Only outcomes that judged the cheap
model are kept (the pipeline decides): not failed or cut calls, nor escalations because the cheap
engine was down, failing or hung. ``tollgate router train --from-ledger``
reads them back through ``/admin/router/labels``. They hold prompt text, so only admin keys can
read them, they are capped (``router.cascade.max_labels``) and can be turned off (``keep_labels``).
Writing one is fire-and-forget: a label is not worth delaying or failing a request for.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from wire.texts import prompt_text

from ..logs import Warnings
from ..store.redis import as_text

LABELS_KEY = "tg:router:labels"
MAX_PROMPT_CHARS = 8000
log = logging.getLogger("tollgate.labels")
throttled = Warnings(log)


def label_of(body: dict, tenant: str, confidence: float | None, reason: str | None) -> dict | None:
    """``reason``: why the cascade escalated; None if it kept the cheap answer."""
    try:
        text = prompt_text(body)
    except ValueError:
        return None
    escalated = reason is not None
    return {"prompt": text[:MAX_PROMPT_CHARS], "weak": 0.0 if escalated else 1.0, "strong": 1.0,
            "escalated": escalated, "reason": reason, "confidence": confidence, "tenant": tenant,
            "ts": round(time.time(), 3)}


class LabelKeeper:
    def __init__(self, redis: Redis, max_labels: int) -> None:
        self.redis = redis
        self.max_labels = max_labels
        self._pending: set[asyncio.Task] = set()

    def keep(self, body: dict, tenant: str, confidence: float | None, reason: str | None) -> None:
        label = label_of(body, tenant, confidence, reason)
        if label is None:
            return
        task = asyncio.get_running_loop().create_task(self._write(label))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, label: dict) -> None:
        try:
            await self.redis.xadd(LABELS_KEY, {"l": orjson.dumps(label)}, maxlen=self.max_labels, approximate=True)
        except (RedisError, OSError) as err:
            throttled.warn(f"router labels dropped: {type(err).__name__}")

    async def read(self, after: str | None, limit: int, newest: bool = False) -> tuple[list[dict], str | None]:
        """Oldest first from ``after``; ``newest``: the last ``limit`` labels (newest first, no cursor)."""
        if newest:
            rows = await self.redis.xrevrange(LABELS_KEY, count=limit) or []
            return [{**orjson.loads(fields[b"l"]), "id": as_text(ident)} for ident, fields in rows if ident and fields], None
        rows = await self.redis.xrange(LABELS_KEY, min=f"({after}" if after else "-", max="+", count=limit) or []
        labels = [{**orjson.loads(fields[b"l"]), "id": as_text(ident)} for ident, fields in rows if ident and fields]
        return labels, as_text(rows[-1][0] or b"") if len(rows) == limit else None
