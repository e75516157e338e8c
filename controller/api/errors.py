"""Every error the HTTP API answers, French first: ``{"detail": "…", "detail_en": "…"}``.

One body for every status, whoever refuses — a route (:class:`ApiError`), the game
(:class:`controller.core.errors.Bilingual`), the access control
(``controller/api/access.py``, :func:`error_body`), FastAPI's request validation (422,
one French sentence per wrong field, naming it), Starlette's unknown route (404) and
method (405), or a bug (500):

- ``detail``: French, what the console shows (``dashboard/static/common.js``);
- ``detail_en``: the same in English, what the pages show in English;
- sometimes more, named in the route's docs: ``errors`` (422: one entry per wrong field;
  a game file refused on reload: one line per error), ``retry_after`` …

docs/dashboard.md, section "Errors", describes it for the pages' authors.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from controller.core.errors import Bilingual

log = logging.getLogger(__name__)


def error_body(fr: str, en: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of every API error."""
    return {"detail": fr, "detail_en": en, **extra}


class ApiError(StarletteHTTPException):
    """An HTTP error raised by a route, with its French and English texts."""

    def __init__(self, status_code: int, fr: str, *, en: str, headers: Mapping[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(status_code=status_code, detail=fr, headers=dict(headers or {}) or None)
        self.fr, self.en, self.extra = fr, en, extra

    @classmethod
    def of(cls, status_code: int, exc: Bilingual, **extra: Any) -> ApiError:
        """The HTTP error for a refusal of the game (its texts as they are)."""
        return cls(status_code, exc.fr, en=exc.en, **extra)


#: what Starlette's and FastAPI's own errors (no text of ours) say, by status
STATUS_TEXTS: dict[int, tuple[str, str]] = {
    400: ("requête mal formée", "bad request"),
    401: ("connexion requise", "login required"),
    403: ("accès refusé", "forbidden"),
    404: ("adresse inconnue", "not found"),
    405: ("méthode non permise", "method not allowed"),
    406: ("format de réponse non disponible", "not acceptable"),
    409: ("conflit avec l'état de la partie", "conflict with the state of the game"),
    413: ("requête trop grande", "request too large"),
    415: ("type de contenu non pris en charge", "unsupported media type"),
    422: ("requête invalide", "invalid request"),
    429: ("trop de requêtes", "too many requests"),
    500: ("erreur interne du contrôleur : elle est dans son journal",
          "internal error of the controller: see its log"),
    503: ("service indisponible", "service unavailable"),
}


def status_texts(status: int) -> tuple[str, str]:
    if status in STATUS_TEXTS:
        return STATUS_TEXTS[status]
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else str(status)
    return f"erreur {status}", phrase


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, ApiError):
        body = error_body(exc.fr, exc.en, **exc.extra)
    else:
        fr, en = status_texts(exc.status_code)
        if exc.status_code == 404:
            fr, en = f"{fr} : {request.url.path}", f"{en}: {request.url.path}"
        elif exc.status_code == 405:
            fr = f"{fr} : {request.method} sur {request.url.path}"
            en = f"{en}: {request.method} on {request.url.path}"
        elif isinstance(exc.detail, str) and exc.detail != HTTPStatus(exc.status_code).phrase:
            en = exc.detail   # a library's own English words: kept for the English pages
        body = error_body(fr, en)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [validation_entry(err) for err in exc.errors()]
    fr = "requête invalide : " + " ; ".join(e["message"] for e in errors)
    en = "invalid request: " + "; ".join(e["message_en"] for e in errors)
    return JSONResponse(error_body(fr, en, errors=errors), status_code=422)


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body(*STATUS_TEXTS[500]), status_code=500)


def install(app: FastAPI) -> None:
    """Answer every error of *app* in the format above."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _server_error)


# -- request validation (422) -------------------------------------------------------------
def field_name(loc: Sequence[Any]) -> str:
    """``("body", "params", "x", 0)`` → ``params.x[0]``; the body itself: ``corps``."""
    out = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header", "cookie") else loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _or(expected: str, word: str) -> str:
    return expected.replace(" or ", f" {word} ")


#: pydantic error type → (French, English); ``{…}`` are the error's context values
MESSAGES: dict[str, tuple[str, str]] = {
    "missing": ("champ obligatoire manquant", "field required"),
    "extra_forbidden": ("champ inconnu", "unknown field"),
    "string_too_short": ("au moins {min_length} caractère(s)", "at least {min_length} character(s)"),
    "string_too_long": ("au plus {max_length} caractères", "at most {max_length} characters"),
    "too_short": ("au moins {min_length} élément(s)", "at least {min_length} item(s)"),
    "too_long": ("au plus {max_length} éléments", "at most {max_length} items"),
    "greater_than": ("doit être supérieur à {gt}", "must be greater than {gt}"),
    "greater_than_equal": ("doit valoir au moins {ge}", "must be at least {ge}"),
    "less_than": ("doit être inférieur à {lt}", "must be less than {lt}"),
    "less_than_equal": ("doit valoir au plus {le}", "must be at most {le}"),
    "multiple_of": ("doit être un multiple de {multiple_of}", "must be a multiple of {multiple_of}"),
    "int_type": ("doit être un nombre entier", "must be a whole number"),
    "int_parsing": ("doit être un nombre entier", "must be a whole number"),
    "int_from_float": ("doit être un nombre entier", "must be a whole number"),
    "float_type": ("doit être un nombre", "must be a number"),
    "float_parsing": ("doit être un nombre", "must be a number"),
    "finite_number": ("doit être un nombre fini", "must be a finite number"),
    "bool_type": ("doit être vrai ou faux (true, false)", "must be true or false"),
    "bool_parsing": ("doit être vrai ou faux (true, false)", "must be true or false"),
    "string_type": ("doit être un texte", "must be a string"),
    "string_pattern_mismatch": ("forme incorrecte (attendu : {pattern})",
                                "wrong format (expected: {pattern})"),
    "literal_error": ("doit être {expected_fr}", "must be {expected}"),
    "enum": ("doit être {expected_fr}", "must be {expected}"),
    "dict_type": ("doit être un objet JSON", "must be a JSON object"),
    "model_type": ("doit être un objet JSON", "must be a JSON object"),
    "model_attributes_type": ("doit être un objet JSON", "must be a JSON object"),
    "list_type": ("doit être une liste", "must be a list"),
    "json_invalid": ("n'est pas du JSON valide ({error})", "is not valid JSON ({error})"),
    "json_type": ("doit être du JSON", "must be JSON"),
    "date_type": ("doit être une date (AAAA-MM-JJ)", "must be a date (YYYY-MM-DD)"),
    "date_parsing": ("doit être une date (AAAA-MM-JJ)", "must be a date (YYYY-MM-DD)"),
    "date_from_datetime_parsing": ("doit être une date (AAAA-MM-JJ)", "must be a date (YYYY-MM-DD)"),
    "datetime_type": ("doit être une date et une heure (ISO 8601)", "must be a date and time (ISO 8601)"),
    "datetime_parsing": ("doit être une date et une heure (ISO 8601)",
                         "must be a date and time (ISO 8601)"),
    "union_tag_invalid": ("type inconnu {tag} : {expected_tags}", "unknown type {tag}: {expected_tags}"),
    "union_tag_not_found": ("il manque le champ {discriminator}", "field {discriminator} is missing"),
}


class _Context(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def validation_entry(err: Mapping[str, Any]) -> dict[str, Any]:
    """One wrong field of a request: where, which rule, and what to do, in both languages."""
    loc = tuple(err.get("loc", ()))
    kind = str(err.get("type", ""))
    ctx = _Context(err.get("ctx") or {})
    cause = ctx.get("error")
    if isinstance(cause, Bilingual):          # a validator of ours said it (InvalidValue)
        fr, en = cause.fr, cause.en
    elif kind in MESSAGES:
        ctx["expected_fr"] = _or(str(ctx.get("expected", "")), "ou")
        fr, en = (template.format_map(ctx) for template in MESSAGES[kind])
    else:
        fr, en = "valeur refusée", str(err.get("msg", kind))
    field = "" if kind == "json_invalid" else field_name(loc)   # its loc is a character position
    if field:
        fr, en = f"{field} : {fr}", f"{field}: {en}"
    elif kind == "json_invalid":
        fr, en = f"le corps de la requête {fr}", f"the request body {en}"
    else:
        fr, en = f"corps de la requête : {fr}", f"request body: {en}"
    return {"field": field or None, "type": kind, "message": fr, "message_en": en}
