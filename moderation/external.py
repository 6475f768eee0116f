"""An external classifier behind OpenAI's ``/v1/moderations`` shape (e.g. Llama Guard on vLLM).

Sends ``{"model": ..., "input": [texts]}`` and reads ``results[i].flagged`` and
``results[i].categories``. Bounded by a timeout; when the classifier fails or is too slow the
configured choice decides: fail open (allow, and count it) or fail closed (treat as flagged).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp

log = logging.getLogger("tollgate.moderation")


@dataclass(frozen=True)
class ExternalResult:
    flagged: bool
    categories: frozenset[str]
    failed: bool = False


class ExternalClassifier:
    def __init__(self, url: str, model: str | None, api_key: str | None, timeout_s: float, fail_closed: bool) -> None:
        self.url = url.rstrip("/") + "/moderations"
        self.model = model
        self.headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.fail_closed = fail_closed
        self._session: aiohttp.ClientSession | None = None

    async def classify(self, texts: list[str]) -> ExternalResult:
        texts = [t for t in texts if t]
        if not texts:
            return ExternalResult(False, frozenset())
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        body = {"input": texts, **({"model": self.model} if self.model else {})}
        try:
            async with self._session.post(self.url, json=body, headers=self.headers) as response:
                if response.status != 200:
                    raise aiohttp.ClientResponseError(response.request_info, (), status=response.status)
                results = (await response.json()).get("results") or []
        except (TimeoutError, aiohttp.ClientError, ValueError, AttributeError) as err:
            log.warning("external moderation failed (%s): failing %s", type(err).__name__,
                        "closed" if self.fail_closed else "open")
            return ExternalResult(self.fail_closed, frozenset({"unavailable"}) if self.fail_closed else frozenset(), True)
        flagged = [r for r in results if isinstance(r, dict) and r.get("flagged")]
        categories = {name for r in flagged for name, hit in (r.get("categories") or {}).items() if hit}
        return ExternalResult(bool(flagged), frozenset(categories))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
