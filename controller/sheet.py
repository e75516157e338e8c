"""The take-home sheet of one session: one A4 page in easy-to-read French (FALC).

:func:`sheet_html` turns a session as the store keeps it into a self-contained HTML page
(served at ``/sheet/<session>``, printed from the browser); :func:`pdf_bytes` prints that
page to a PDF with Debian's headless Chromium — the one way, for ``/sheet/<session>.pdf``
and ``escape-apartment sheet --pdf``. The figures come from
:func:`controller.debrief.debrief`, the words (French, or English) from ``config/sheet.yaml``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from html import escape
from pathlib import Path
from typing import Any

from config.game import Game, Text
from config.sheet import SheetWords, SheetWordsError
from config.sheet import load as load_words
from controller.debrief import debrief

CHROMIUM = "chromium"
PDF_TIMEOUT_S = 60
# one headless Chromium at a time for the whole controller (≈ 150–300 MB and seconds of CPU
# each on a Pi 5): two staff printing at once, or a double click, wait their turn, at most
# PDF_WAIT_S (None: PDF_TIMEOUT_S, as long as the one printing may take)
PDF_WAIT_S: float | None = None
_ONE_CHROMIUM = threading.Lock()

_CSS = """
@page { size: A4; margin: 12mm; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 14.5pt; line-height: 1.3;
       color: #000; background: #fff; margin: 0 auto; max-width: 186mm; }
h1 { font-size: 21pt; margin: 0 0 1mm; }
h2 { font-size: 17pt; margin: 4mm 0 2mm; border-bottom: 2px solid #000; }
p { margin: 0 0 1mm; }
ul { list-style: none; margin: 0; padding: 0; }
li { margin: 0 0 1.5mm; break-inside: avoid; }
.icon { display: inline-block; width: 1.7em; font-size: 1.1em; }
.budget li { display: flex; justify-content: space-between; max-width: 130mm; margin-bottom: 1mm; }
.budget .left { font-weight: bold; font-size: 17pt; }
.theme { display: grid; grid-template-columns: 2em 1fr; }
.theme .icon, .contact .icon { grid-row: span 2; }
.contacts { display: grid; grid-template-columns: 1fr 1fr; column-gap: 6mm; }
.contact { display: grid; grid-template-columns: 2em 1fr; }
.contact .phone { font-size: 16pt; font-weight: bold; letter-spacing: 0.04em; }
.example { font-size: 9pt; font-weight: normal; border: 1px solid #000; padding: 0 1mm; }
.screen-only { margin: 4mm 0; }
@media print { .screen-only { display: none; } }
"""


def euros(amount: int | float) -> str:
    """*amount* the French way: ``1 250 €`` (a narrow no-break space between thousands)."""
    return f"{round(amount):,} €".replace(",", "\u202f").replace("-", "−")


def figures(d: dict[str, Any]) -> dict[str, int]:
    """The group's budget on the sheet: the start, what the group paid during the game, the
    bills charged late (with their fees), and what is left."""
    budget = d["budget"]
    start = budget["start"] or 0
    left = budget["final"]
    if left is None:   # a session not over: what is left so far
        left = budget["history"][-1]["balance"] if budget["history"] else start
    return {"start": start, "paid": sum(b["paid"] for b in budget["bills"]),
            "late": budget["late"], "left": left}


def sheet_html(session: dict[str, Any], game: Game | None = None,
               words: SheetWords | None = None, lang: str = "fr") -> str:
    """The sheet of *session* (a :meth:`Store.session` dict), as one HTML page in *lang*
    (``fr``, or ``en`` where ``config/sheet.yaml`` gives the English)."""
    words = words or load_words()
    say = {name: text.get(lang) for name, text in words.labels if isinstance(text, Text)}
    d = debrief(session, game, words)
    f = figures(d)
    when = _date(d["session"].get("date"), words, lang)
    players = d["session"].get("players")
    themes = [t["theme"] for t in d["themes"] if t["theme"] in words.themes]
    themes += [t for t in words.themes if t not in themes]   # every theme's advice, played first
    theme_items = "".join(
        f'<li class="theme" data-theme="{escape(t)}"><span class="icon">{escape(a.icon)}</span>'
        f"<b>{escape(title)}</b><span>{escape(advice)}</span></li>"
        for t, a in ((t, words.themes[t]) for t in themes) for title, advice in [a.get(lang)])
    contact_items = "".join(
        f'<li class="contact"><span class="icon">{escape(c.icon)}</span><b>{escape(c.name(lang))}</b>'
        f'<span><span class="phone">{escape(c.phone)}</span>'
        + (f' <span class="example">{escape(say["example"])}</span>' if c.example else "") + "</span></li>"
        for c in words.contacts)
    we_were = f"<p>{escape(say['we_were'].format(n=int(players)))}</p>" if players else ""
    return f"""<!doctype html>
<html lang="{'en' if lang == 'en' else 'fr'}"><head><meta charset="utf-8">
<title>{escape(say['title'])} — {escape(say['workshop'])}</title><style>{_CSS}</style></head>
<body class="sheet" data-session="{escape(str(d['session']['id']))}">
<p class="screen-only"><button onclick="window.print()">🖨️ {escape(say['print'])}</button></p>
<h1>🏠 {escape(say['title'])}</h1>
<p>{escape(say['workshop'])}{escape(when)}.</p>
{we_were}
<h2>💶 {escape(say['budget'])}</h2>
<ul class="budget">
<li class="start"><span>{escape(say['start'])}</span><span>{euros(f['start'])}</span></li>
<li class="paid"><span>{escape(say['paid'])}</span><span>{euros(f['paid'])}</span></li>
<li class="late"><span>{escape(say['late'])}</span><span>{euros(f['late'])}</span></li>
<li class="left"><span>{escape(say['left'])}</span><span>{euros(f['left'])}</span></li>
</ul>
<p>{escape(say['late_costs_more'])}</p>
<h2>💡 {escape(say['advice'])}</h2>
<ul class="themes">{theme_items}</ul>
<h2>📞 {escape(say['numbers'])}</h2>
<ul class="contacts">{contact_items}</ul>
</body></html>
"""


def _date(iso: str | None, words: SheetWords, lang: str) -> str:
    """`` le 4 décembre 2026`` for ``2026-12-04`` (empty when unknown)."""
    if not iso:
        return ""
    try:
        day = dt.date.fromisoformat(iso[:10])
    except ValueError:
        return ""
    month = words.labels.months[day.month - 1].get(lang)
    return " " + words.labels.date.get(lang).format(day=day.day, month=month, year=day.year)


class PdfError(RuntimeError):
    """The PDF could not be made; French first, as every error the staff read."""

    def __init__(self, fr: str, *, en: str) -> None:
        super().__init__(fr)
        self.fr, self.en = fr, en


class ChromiumMissing(PdfError):
    """No Chromium on this machine (the Debian package ``chromium``)."""


class PdfTimeout(PdfError):
    """Chromium did not finish in :data:`PDF_TIMEOUT_S`: it was killed with its children."""


class PdfBusy(PdfError):
    """Another PDF was being printed for longer than :data:`PDF_WAIT_S`."""


def pdf_bytes(html: str, *, chromium: str | None = None, timeout: float | None = None) -> bytes:
    """*html* printed to a PDF by headless Chromium (``--print-to-pdf``), as bytes.

    Blocking (seconds): the controller runs it in a worker thread. Chromium runs in a
    process group of its own, so a timeout kills it with every process it started. One
    Chromium at a time: a call waits for the one running, :data:`PDF_WAIT_S` at most."""
    name = chromium or CHROMIUM
    exe = shutil.which(name)
    if exe is None:
        raise ChromiumMissing(
            f"Chromium n'est pas installé sur le contrôleur ({name}) : installez le paquet "
            "Debian « chromium », ou imprimez la fiche depuis le navigateur",
            en=f"Chromium is not installed on the controller ({name}): install Debian's "
               "« chromium » package, or print the sheet from the browser")
    limit = PDF_TIMEOUT_S if timeout is None else timeout
    if not _ONE_CHROMIUM.acquire(timeout=PDF_TIMEOUT_S if PDF_WAIT_S is None else PDF_WAIT_S):
        raise PdfBusy("Une autre impression est en cours, réessayez dans un instant",
                      en="Another document is being printed, try again in a moment")
    try:
        return _print(exe, html, limit)
    finally:
        _ONE_CHROMIUM.release()


def _print(exe: str, html: str, limit: float) -> bytes:
    """*html* printed by the Chromium *exe*, given *limit* seconds (:func:`pdf_bytes`)."""
    with tempfile.TemporaryDirectory(prefix="sheet-") as tmp:
        page = Path(tmp) / "sheet.html"
        page.write_text(html, encoding="utf-8")
        target = Path(tmp) / "sheet.pdf"
        proc = subprocess.Popen(  # noqa: S603 - a fixed program on a page we wrote
            [exe, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp}/profile",
             "--no-pdf-header-footer", f"--print-to-pdf={target}", page.as_uri()],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        try:
            _out, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise PdfTimeout(f"Chromium n'a pas fini la fiche en {limit:g} s : réessayez",
                             en=f"Chromium did not finish the sheet within {limit:g} s: try again") from None
        data = target.read_bytes() if target.is_file() else b""
    if proc.returncode != 0 or not data.startswith(b"%PDF"):
        why = (err or b"").decode(errors="replace").strip()[-300:]
        raise PdfError(f"Chromium n'a pas écrit la fiche (code {proc.returncode}) : {why}",
                       en=f"Chromium did not write the sheet (code {proc.returncode}): {why}")
    return data


def write_pdf(html: str, out: Path, *, chromium: str | None = None) -> None:
    """Print *html* to the PDF *out* with headless Chromium (:func:`pdf_bytes`)."""
    out.write_bytes(pdf_bytes(html, chromium=chromium))


# -- escape-apartment sheet SESSION --pdf OUT ------------------------------------------------
def register(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser("sheet", help="a session's take-home sheet (HTML, or PDF with --pdf)")
    cmd.add_argument("session", help="the session id (as in the history)")
    cmd.add_argument("--pdf", type=Path, default=None, help="write a PDF here (headless Chromium)")
    cmd.add_argument("--html", type=Path, default=None, help="write the HTML page here")
    cmd.add_argument("--lang", choices=("fr", "en"), default="fr", help="the sheet's language (default fr)")
    cmd.add_argument("--data-dir", default=None, help="where the store is (env ESCAPE_DATA_DIR)")
    cmd.add_argument("--config", default=None, help="game file (env ESCAPE_CONFIG)")
    cmd.set_defaults(func=cmd_sheet)


def cmd_sheet(args: argparse.Namespace) -> int:
    from config.loader import load_game
    from controller.core.config import Settings
    from controller.store import DB_NAME, Store, StoreError

    settings = Settings.with_flags(DATA_DIR=args.data_dir, CONFIG=args.config)
    db = settings.DATA_DIR / DB_NAME
    if not db.is_file():
        print(f"Pas de base de parties ici : {db}")
        return 1
    try:
        store = Store(db)
    except StoreError as exc:
        print(f"Base de parties illisible : {exc}")
        return 1
    try:
        session = store.session(args.session)
    finally:
        store.close()
    if session is None:
        print(f"Partie inconnue : {args.session}")
        return 1
    try:
        html = sheet_html(session, load_game(settings.CONFIG), lang=args.lang)
    except SheetWordsError as exc:
        print(f"Fiche impossible : {exc}")
        return 1
    if args.html:
        args.html.write_text(html, encoding="utf-8")
    if args.pdf:
        try:
            write_pdf(html, args.pdf)
        except (OSError, PdfError) as exc:
            print(f"PDF impossible : {exc}")
            return 1
        print(f"Fiche écrite : {args.pdf}")
    if not (args.html or args.pdf):
        print(html)
    return 0
