"""The billing API and dashboard: read-only, one accountant per bearer token.

    GET /billing?month=YYYY-MM      the caller's statement of a month (default: its latest month with data)
    GET /billing/history            the caller's months, newest first
    GET /billing.csv?month=YYYY-MM  the month's usage lines as CSV (or ?from=&to= a range; formula-injection safe)
    GET /                           the dashboard (static/index.html, app.js, style.css)
    GET /admin/months, /admin/statements?month=, /admin/billing?month=&accountant_id=   the data team (admin tokens)
    GET /healthz                    liveness, no data
    GET /api/docs                   the OpenAPI page (Swagger UI served from the swagger-ui-bundle package)

Every data request: authenticate (401, also for an expired token), refuse another tenant's id in the query and
the other scope's endpoints (403), validate the parameters (400), read the published snapshots in memory
(api/published.py: never the warehouse, so a pipeline run writing it changes nothing here), answer 404 when the
caller has no data for the month. See docs/billing-api.md.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources as package_files

import swagger_ui_bundle
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders

from billing_pipeline.api import queries
from billing_pipeline.api.auth import Grant, TokensFileError, TokenStore
from billing_pipeline.api.published import NothingPublished, PublishedBilling
from billing_pipeline.exports import safe_text
from billing_pipeline.publishing import PublishedError

log = logging.getLogger("billing_pipeline.api")
MONTH = re.compile(r"^([0-9]{4})-([0-9]{2})$")  # ASCII digits: \d would take "２０２６-０１" as 2026-01
SINGLE_PARAMETERS = ("month", "from", "to")  # each at most once: `?month=a&month=b` answered b, silently
DEFAULT_FIRST_MONTH = "2018-01"
STATIC_DIR = str(package_files.files("billing_pipeline.api").joinpath("static"))
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
}


def _error(status: int, message: str, headers: dict | None = None) -> HTTPException:
    return HTTPException(status_code=status, detail=message, headers=headers)


# ----------------------------------------------------------------------------------------------------------------
# Parameters


def _month_start(text: str, name: str) -> dt.date:
    match = MONTH.match(text)
    if not match:
        raise ValueError(f"{name} must look like YYYY-MM (e.g. 2026-01), got {text[:20]!r}")
    year, month = int(match[1]), int(match[2])
    if not 1 <= month <= 12:
        raise ValueError(f"{name} {text!r}: the month must be 01..12")
    return dt.date(year, month, 1)


def _month_range() -> tuple[dt.date, dt.date]:
    first_text = os.environ.get("BILLING_FIRST_MONTH") or DEFAULT_FIRST_MONTH
    try:
        first = _month_start(first_text[:7], "BILLING_FIRST_MONTH")
    except ValueError:
        first = _month_start(DEFAULT_FIRST_MONTH, "BILLING_FIRST_MONTH")
    today = dt.datetime.now(dt.timezone.utc).date()
    return first, today.replace(day=1)


def parse_month(value: str | None) -> dt.date | None:
    """The `month` parameter as the first day of the month; a clear 400 when it is malformed or out of range."""
    if value is None:
        return None
    try:
        period = _month_start(value.strip(), "month")
    except ValueError as error:
        raise _error(400, str(error)) from None
    first, last = _month_range()
    if not first <= period <= last:
        raise _error(400, f"month {value.strip()} is out of range: billing months run from {first:%Y-%m} "
                          f"to the current month {last:%Y-%m}")
    return period


# ----------------------------------------------------------------------------------------------------------------
# App


@dataclass
class Entry:
    """A served document: being built (`future`), or built (`value`); `build` makes it again after a switch."""

    future: asyncio.Future | None
    value: object
    build: Callable[[], object]


class SecurityHeaders:
    """Headers on every answer (a plain ASGI middleware: no extra task per request). Data is never cached."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        no_store = scope["path"].startswith(("/billing", "/admin"))

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    if key not in headers:
                        headers[key] = value
                if no_store:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(published: str | None = None, tokens_file: str | None = None,
               refresh_seconds: float | None = None) -> FastAPI:
    """The app. `published` (the snapshots' folder or s3:// URI) and `tokens_file` default to BILLING_PUBLISH_URI
    and BILLING_API_TOKENS."""
    # OpenAPI 3.0.3: the Swagger UI of swagger-ui-bundle (4.15) renders 3.0 documents, not 3.1
    app = FastAPI(title="billing_pipeline API", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.openapi_version = "3.0.3"
    store = TokenStore(tokens_file)
    billing = PublishedBilling(published, refresh_seconds)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, error: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg')}" for e in error.errors())
        return JSONResponse(status_code=400, content={"detail": f"bad parameters: {problems}"})

    app.add_middleware(SecurityHeaders)

    # The dependencies and the tenant endpoints are coroutines: a request served from memory never leaves the
    # event loop; building a document (DuckDB) and refreshing the snapshots run in the thread pool.
    async def grant(request: Request) -> Grant:
        """The bearer token's grant: 401 without one, for an unknown, revoked or expired token."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="billing"'}
        if scheme.lower() != "bearer" or not token.strip():
            raise _error(401, "Missing bearer token: send 'Authorization: Bearer <token>'.", challenge)
        try:
            found = store.grant_for(token.strip())
        except (TokensFileError, OSError):
            raise _error(503, "The API's tokens file cannot be read; ask the operator to check BILLING_API_TOKENS.") from None
        invalid = {"WWW-Authenticate": 'Bearer realm="billing", error="invalid_token"'}
        if found is None:
            raise _error(401, "Invalid or revoked token.", invalid)
        if found.expired():
            raise _error(401, f"Token {found.id} expired at {found.expires_at}: ask for a new one.", invalid)
        return found

    def given_once(request: Request, names=SINGLE_PARAMETERS) -> None:
        """400 for a parameter given twice (the framework would take the last one, a proxy or a log the first)."""
        for name in names:
            if len(request.query_params.getlist(name)) > 1:
                raise _error(400, f"{name} is given more than once")

    async def caller(request: Request, granted: Grant = Depends(grant)) -> str:
        """A tenant token's accountant; any other tenant's id in the query is refused."""
        if granted.scope != "tenant":
            raise _error(403, "An admin token reads /admin/...; the tenant endpoints take a tenant's token.")
        for requested in request.query_params.getlist("accountant_id"):
            if requested != granted.accountant_id:
                raise _error(403, "A token only gives access to its own accountant's billing data.")
        given_once(request)
        return granted.accountant_id

    async def admin(request: Request, granted: Grant = Depends(grant)) -> Grant:
        if granted.scope != "admin":
            raise _error(403, "These endpoints are for the data team's admin tokens.")
        given_once(request, (*SINGLE_PARAMETERS, "accountant_id"))
        return granted

    def run(fn, *args):
        try:
            with billing.reading() as con:
                return fn(con, *args)
        except (NothingPublished, PublishedError, OSError) as error:
            raise _error(503, str(error) if isinstance(error, NothingPublished)
                         else "The published billing cannot be read; ask the operator to check BILLING_PUBLISH_URI.",
                         {"Retry-After": "60"}) from None
        except queries.NoData as error:
            raise _error(404, str(error)) from None
        except ValueError as error:
            raise _error(500, str(error)) from None

    # What is served: documents by key (kind, accountant, month), built from the published state. A snapshot never
    # changes, so each document is built (and serialized) once per switch and then served from memory.
    memo: dict = {"generation": None, "entries": {}}  # key -> Entry
    warming = threading.Lock()

    def refresh_and_warm() -> None:
        """Swap in newly published months, then rebuild the documents being served before serving them: until
        then the other clients get the previous documents (each whole) instead of all waiting for the rebuild."""
        try:
            billing.refresh()
        except (PublishedError, OSError) as error:  # keep serving what is loaded; a miss says 503
            log.warning(f"published billing not refreshed: {error}")
        if memo["generation"] == billing.generation or not warming.acquire(blocking=False):
            return  # up to date, or another thread is warming
        try:
            generation = billing.generation
            warm = {}
            for key, entry in list(memo["entries"].items()):
                try:
                    warm[key] = Entry(None, entry.build(), entry.build)
                except Exception:  # noqa: BLE001 (e.g. a month withdrawn: built again, and answered, on request)
                    continue
            memo["generation"], memo["entries"] = generation, warm
        finally:
            warming.release()

    async def cached(key: tuple, build):
        if billing.refresh_due():
            await run_in_threadpool(refresh_and_warm)
        entries = memo["entries"]
        entry = entries.get(key)
        if entry is None:  # one build per key, however many ask at once
            entry = entries[key] = Entry(asyncio.ensure_future(run_in_threadpool(build)), None, build)
        if entry.future is None:
            return entry.value
        try:
            return await asyncio.shield(entry.future)  # a client that hangs up does not cancel the others' build
        except Exception:
            if entries.get(key) is entry:
                del entries[key]  # errors are not kept: the next request tries again
            raise

    def month_statement(accountant_id: str, period: dt.date | None) -> dict:
        def load(con):
            chosen = period
            if chosen is None:
                months = queries.tenant_months(con, accountant_id)
                if not months:
                    raise queries.NoData("No billing data yet.")
                chosen = months[0]
            return queries.statement(con, accountant_id, chosen)

        return run(load)

    def json_body(doc) -> bytes:
        return json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")

    @app.get("/healthz", include_in_schema=False)
    def healthz():
        return {"status": "ok"}

    @app.get("/billing")
    async def billing_statement(month: str | None = None, accountant_id: str = Depends(caller)):
        """The caller's statement of `month` (YYYY-MM; default: the latest month with data)."""
        period = parse_month(month)
        body = await cached(("statement", accountant_id, period),
                      lambda: json_body(month_statement(accountant_id, period)))
        return Response(body, media_type="application/json")

    @app.get("/billing/history")
    async def billing_history(accountant_id: str = Depends(caller)):
        """The caller's months with data, newest first."""
        body = await cached(("history", accountant_id), lambda: json_body(
            {"accountant_id": accountant_id, "months": run(queries.history, accountant_id)}))
        return Response(body, media_type="application/json")

    def csv_month(accountant_id: str, period: dt.date | None) -> tuple[str, str]:
        """A month's CSV rows (no header) and the month (None: the latest)."""
        doc = month_statement(accountant_id, period)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        for row in queries.csv_rows(doc):
            writer.writerow([safe_cell(cell) for cell in row])
        return buffer.getvalue(), doc["month"]

    @app.get("/billing.csv")
    async def billing_csv(month: str | None = None, from_month: str | None = Query(None, alias="from"),
                          to_month: str | None = Query(None, alias="to"), accountant_id: str = Depends(caller)):
        """The usage lines of `month` (default: the latest), or of every month from `from` to `to`, as CSV."""
        if month is not None and (from_month or to_month):
            raise _error(400, "give either month or from/to, not both")
        if from_month or to_month:
            first, last = parse_month(from_month or to_month), parse_month(to_month or from_month)
            if first > last:
                raise _error(400, f"from {first:%Y-%m} is after to {last:%Y-%m}")
        else:
            first = last = parse_month(month)
        # Kept per month, a range put together per request: one document per (from, to) pair let one token fill
        # the memory with copies of the same months, each rebuilt after every publication
        if first == last:
            rows, span = await cached(("csv", accountant_id, first), lambda: csv_month(accountant_id, first))
        else:
            months = await cached(("months", accountant_id), lambda: run(queries.tenant_months, accountant_id))
            chosen = sorted(m for m in months if first <= m <= last)
            if not chosen:
                raise _error(404, f"No billing data from {first:%Y-%m} to {last:%Y-%m}.")
            parts = [await cached(("csv", accountant_id, m), lambda m=m: csv_month(accountant_id, m)) for m in chosen]
            rows, span = "".join(text for text, _month in parts), f"{first:%Y-%m}_{last:%Y-%m}"
        header = io.StringIO()
        csv.writer(header, lineterminator="\r\n").writerow(queries.CSV_COLUMNS)
        filename = re.sub(r"[^A-Za-z0-9._-]", "_", f"{accountant_id}_{span}.csv")
        return Response(header.getvalue() + rows, media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    @app.get("/admin/months")
    def admin_months(_granted: Grant = Depends(admin)):
        """The data team: every published month, its snapshot, publication time and CUR delivery."""
        return {"months": run(queries.published_months)}

    @app.get("/admin/statements")
    def admin_statements(month: str, _granted: Grant = Depends(admin)):
        """The data team: every tenant's statement lines of `month`, as published."""
        period = parse_month(month)
        return run(queries.month_statements, period)

    @app.get("/admin/billing")
    def admin_billing(month: str, accountant_id: str, _granted: Grant = Depends(admin)):
        """The data team: any tenant's statement of `month`, as that tenant sees it."""
        period = parse_month(month)
        return run(queries.statement, accountant_id, period)

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(os.path.join(STATIC_DIR, "index.html"), media_type="text/html")

    @app.get("/api/docs", include_in_schema=False)
    def docs():
        return FileResponse(os.path.join(STATIC_DIR, "docs.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # Swagger UI's files from the swagger-ui-bundle package: the docs page loads nothing from the internet
    app.mount("/api/docs/swagger-ui", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger-ui")
    app.state.published = billing
    app.state.served = memo  # the documents served from memory (the tests count them)
    return app


NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def safe_cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run: text starting with = + - @ or a tab/CR gets a leading quote (OWASP);
    plain numbers, negative ones included, stay numbers."""
    text = "" if value is None else str(value)
    return text if NUMBER.match(text) else safe_text(text)  # the exports' rule (billing_pipeline/exports.py)


app = create_app()
