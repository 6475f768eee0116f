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


@router.get("/dashboard/app.js")
async def dashboard_script() -> Response:
    return _file("app.js")


@router.get("/dashboard/console.js")
async def console_script() -> Response:
    return _file("console.js")


@router.get("/dashboard/vendor/chart.umd.min.js")
async def chart_library() -> Response:
    return _file("vendor/chart.umd.min.js")


@router.get("/dashboard/style.css")
async def dashboard_style() -> Response:
    return _file("style.css")
