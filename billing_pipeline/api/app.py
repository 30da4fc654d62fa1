"""The billing API and dashboard: read-only, one accountant per bearer token.

    GET /billing?month=YYYY-MM      the caller's statement of a month (default: its latest month with data)
    GET /billing/history            the caller's months, newest first
    GET /billing.csv?month=YYYY-MM  the statement as CSV (formula-injection safe)
    GET /                           the dashboard (static/index.html, app.js, style.css)
    GET /healthz                    liveness, no data

Every data request: authenticate (401), refuse another tenant's id in the query (403), validate the parameters
(400), open the DuckDB file read-only (503 while a writer holds it past a short retry), answer 404 when the
caller has no data for the month. See docs/billing-api.md.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
from contextlib import closing
from importlib import resources as package_files

import duckdb
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from billing_pipeline.api import queries
from billing_pipeline.api.auth import TokensFileError, TokenStore

MONTH = re.compile(r"^(\d{4})-(\d{2})$")
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


def create_app(warehouse: str | None = None, tokens_file: str | None = None) -> FastAPI:
    """The app. `warehouse` and `tokens_file` default to BILLING_WAREHOUSE and BILLING_API_TOKENS, read at each
    request (so one process follows the environment it was started in)."""
    app = FastAPI(title="billing_pipeline API", version="1", docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json")
    store = TokenStore(tokens_file)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, error: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg')}" for e in error.errors())
        return JSONResponse(status_code=400, content={"detail": f"bad parameters: {problems}"})

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        if request.url.path.startswith("/billing"):
            response.headers["Cache-Control"] = "no-store"
        return response

    def caller(request: Request) -> str:
        """Authenticate the bearer token and refuse any other tenant's id in the query."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="billing"'}
        if scheme.lower() != "bearer" or not token.strip():
            raise _error(401, "Missing bearer token: send 'Authorization: Bearer <token>'.", challenge)
        try:
            accountant_id = store.accountant_for(token.strip())
        except (TokensFileError, OSError):
            raise _error(503, "The API's tokens file cannot be read; ask the operator to check BILLING_API_TOKENS.")
        if accountant_id is None:
            raise _error(401, "Invalid or revoked token.", {"WWW-Authenticate": 'Bearer realm="billing", error="invalid_token"'})
        for requested in request.query_params.getlist("accountant_id"):
            if requested != accountant_id:
                raise _error(403, "A token only gives access to its own accountant's billing data.")
        return accountant_id

    def connect():
        path = warehouse or queries.warehouse_path()
        try:
            return queries.open_read_only(path)
        except queries.WarehouseUnavailable as error:
            raise _error(503, str(error), {"Retry-After": "5"}) from None

    def run(fn, *args):
        with closing(connect()) as con:
            try:
                return fn(con, *args)
            except duckdb.CatalogException:
                raise _error(503, "The billing warehouse has no billing tables yet: run the pipeline first.",
                             {"Retry-After": "60"}) from None
            except queries.NoData as error:
                raise _error(404, str(error)) from None
            except queries.MonthInconsistent as error:
                raise _error(503, str(error), {"Retry-After": "300"}) from None
            except ValueError as error:
                raise _error(500, str(error)) from None

    def month_statement(accountant_id: str, month: str | None) -> dict:
        period = parse_month(month)

        def load(con):
            chosen = period
            if chosen is None:
                months = queries.tenant_months(con, accountant_id)
                if not months:
                    raise queries.NoData("No billing data yet.")
                chosen = months[0]
            return queries.statement(con, accountant_id, chosen)

        return run(load)

    @app.get("/healthz", include_in_schema=False)
    def healthz():
        return {"status": "ok"}

    @app.get("/billing")
    def billing(month: str | None = None, accountant_id: str = Depends(caller)):
        """The caller's statement of `month` (YYYY-MM; default: the latest month with data)."""
        return month_statement(accountant_id, month)

    @app.get("/billing/history")
    def billing_history(accountant_id: str = Depends(caller)):
        """The caller's months with data, newest first."""
        months = run(queries.history, accountant_id)
        return {"accountant_id": accountant_id, "months": months}

    @app.get("/billing.csv")
    def billing_csv(month: str | None = None, accountant_id: str = Depends(caller)):
        """The statement of `month` as CSV."""
        doc = month_statement(accountant_id, month)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(queries.CSV_COLUMNS)
        for row in queries.csv_rows(doc):
            writer.writerow([safe_cell(cell) for cell in row])
        filename = re.sub(r"[^A-Za-z0-9._-]", "_", f"billing-{accountant_id}-{doc['month']}.csv")
        return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(os.path.join(STATIC_DIR, "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def safe_cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run: text starting with = + - @ or a tab/CR gets a leading quote (OWASP);
    plain numbers, negative ones included, stay numbers."""
    text = "" if value is None else str(value)
    if text and text[0] in "=+-@\t\r" and not NUMBER.match(text):
        return "'" + text
    return text


app = create_app()
