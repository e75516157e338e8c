"""The year's impact report (controller/report.py), for the game master.

``GET /api/report`` the figures (``?year=2026``, or ``?from=…&to=…``; ``?target=24``);
``GET /api/report/csv/{table}`` one table as CSV, ``GET /api/report/csv`` all of them in a
zip; ``GET /report`` the « Bilan de l'année » page; ``GET /report/{year}.pdf`` the page
printed to PDF by the controller's Chromium. Counts and categories only: no name, no
number, no free text (:data:`controller.report.LEFT_OUT`).
"""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from config import followup as questionnaire_file
from controller.api.access import GM, GM_PAGE
from controller.api.deps import ServiceDep, StoreDep
from controller.api.errors import ApiError
from controller.api.models import YearReport
from controller.report import (
    CSV_TABLES,
    DEFAULT_TARGET,
    Period,
    ReportError,
    page_controls,
    report_csvs,
    report_html,
    report_zip,
    year_report,
)
from controller.sheet import PdfBusy, write_pdf

router = APIRouter(tags=["report"])

Year = Annotated[int | None, Query(ge=2000, le=2100, description="the calendar year (default: this year)")]
DateFrom = Annotated[dt.date | None, Query(alias="from",
                                            description="first day (YYYY-MM-DD), instead of the year")]
DateTo = Annotated[dt.date | None, Query(alias="to", description="last day (YYYY-MM-DD)")]
Target = Annotated[int, Query(ge=1, le=1000, description="sessions the action promises for the period")]
Table = Literal[CSV_TABLES]  # type: ignore[valid-type]

CSV_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "a CSV file"}}
ZIP_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
          "description": "the CSV files, zipped"}}
PDF_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
          "description": "the report, printed"}}


def _report(service: ServiceDep, store: StoreDep, *, year: int | None, start: dt.date | None,
            end: dt.date | None, target: int) -> tuple[dict[str, Any], Period]:
    today = dt.datetime.fromtimestamp(service.wall()).date()
    try:
        period = Period.of(year=year, start=start, end=end, today=today)
    except ReportError as exc:
        raise ApiError.of(422, exc) from exc
    return year_report(store, period, target=target, questionnaire=questionnaire_file.load()), period


def _name(period: Period) -> str:
    return f"bilan-{period.start.isoformat()}-{period.end.isoformat()}"


@router.get("/api/report", response_model=YearReport, dependencies=[GM])
def report(*, service: ServiceDep, store: StoreDep, year: Year = None, date_from: DateFrom = None,
           date_to: DateTo = None, target: Target = DEFAULT_TARGET) -> dict[str, Any]:
    """The year's figures: sessions against the target, participants, results and times,
    clues per puzzle, themes learned, ratings, follow-up answers."""
    return _report(service, store, year=year, start=date_from, end=date_to, target=target)[0]


@router.get("/api/report/csv", response_class=Response, responses=ZIP_DOC, dependencies=[GM])
def report_csv_zip(*, service: ServiceDep, store: StoreDep, year: Year = None, date_from: DateFrom = None,
                   date_to: DateTo = None, target: Target = DEFAULT_TARGET) -> Response:
    """Every table of the report as a CSV file, in one zip."""
    r, period = _report(service, store, year=year, start=date_from, end=date_to, target=target)
    return Response(report_zip(r), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{_name(period)}.zip"'})


@router.get("/api/report/csv/{table}", response_class=Response, responses=CSV_DOC, dependencies=[GM])
def report_csv(table: Table, *, service: ServiceDep, store: StoreDep, year: Year = None,
               date_from: DateFrom = None, date_to: DateTo = None,
               target: Target = DEFAULT_TARGET) -> Response:
    """One table of the report: ``;`` between fields, decimal comma, dates JJ/MM/AAAA, UTF-8
    with a BOM (what a French-locale spreadsheet opens as it is)."""
    r, period = _report(service, store, year=year, start=date_from, end=date_to, target=target)
    return Response(report_csvs(r)[table], media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{_name(period)}-{table}.csv"'})


def _query(year: int | None, start: dt.date | None, end: dt.date | None, target: int) -> str:
    q: dict[str, Any] = {}
    if year is not None:
        q["year"] = year
    if start is not None:
        q["from"] = start.isoformat()
    if end is not None:
        q["to"] = end.isoformat()
    if target != DEFAULT_TARGET:
        q["target"] = target
    return urlencode(q)


@router.get("/report", include_in_schema=False, dependencies=[GM_PAGE])
def report_page(*, service: ServiceDep, store: StoreDep, year: Year = None, date_from: DateFrom = None,
                date_to: DateTo = None, target: Target = DEFAULT_TARGET) -> HTMLResponse:
    """The « Bilan de l'année » page, its charts drawn here (inline SVG)."""
    r, period = _report(service, store, year=year, start=date_from, end=date_to, target=target)
    query = _query(year, date_from, date_to, target)
    controls = page_controls(r, query=query, year=year or period.start.year)
    return HTMLResponse(report_html(r, controls=controls), headers={"Cache-Control": "no-store"})


@router.get("/report/{year}.pdf", response_class=Response, responses=PDF_DOC, dependencies=[GM_PAGE])
def report_pdf(year: int, *, service: ServiceDep, store: StoreDep, date_from: DateFrom = None,
               date_to: DateTo = None, target: Target = DEFAULT_TARGET) -> Response:
    """The report printed to an A4 PDF by headless Chromium (a few seconds)."""
    if not 2000 <= year <= 2100:
        raise ApiError(404, f"année inconnue : {year}", en=f"unknown year: {year}")
    r, period = _report(service, store, year=year, start=date_from, end=date_to, target=target)
    with tempfile.TemporaryDirectory(prefix="report-") as tmp:
        out = Path(tmp) / "bilan.pdf"
        try:
            write_pdf(report_html(r), out)
        except PdfBusy as exc:
            raise ApiError(503, exc.fr, en=exc.en) from exc
        except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
            raise ApiError(503, f"PDF impossible : {exc}", en=f"no PDF: {exc}") from exc
        data = out.read_bytes()
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{_name(period)}.pdf"'})
