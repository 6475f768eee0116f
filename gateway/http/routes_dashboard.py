"""``/dashboard``: the cost report as a web page for team leads and finance, and for admin keys
the operator's console (tenants, keys, limits, router thresholds, moderation) over the admin API.

The page itself holds no data and needs no key; its script asks the reports API with the key the
user types (kept in the tab's session storage) and draws the charts with Chart.js, vendored into
the package (``dashboard/vendor``), so nothing is fetched from outside the gateway. A strict Content-Security-Policy allows only the gateway's own files.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from starlette.responses import Response

from ..errors import APIError

router = APIRouter(tags=["dashboard"], include_in_schema=False)
_FILES = Path(__file__).with_name("dashboard")
_TYPES = {"app.js": "text/javascript", "console.js": "text/javascript", "style.css": "text/css", "index.html": "text/html",
          "vendor/chart.umd.min.js": "text/javascript"}  # Chart.js 4.6.1 (MIT, vendor/chart.js.LICENSE.md)
_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


@cache
def _read(name: str) -> bytes:
    return (_FILES / name).read_bytes()


def _file(name: str) -> Response:
    return Response(_read(name), media_type=_TYPES[name], headers=_HEADERS)


@router.get("/dashboard")
async def dashboard() -> Response:
    return _file("index.html")


@router.get("/dashboard/{name:path}")
async def dashboard_file(name: str) -> Response:
    """The page's own files; nothing else under /dashboard is served."""
    if name not in _TYPES or name == "index.html":
        raise APIError(404, f"no dashboard file {name[:100]!r}", code="not_found")
    return _file(name)
