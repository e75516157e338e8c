"""The soak's report: JSON (everything) and Markdown (for people), and a printed summary."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "soak" / "results"
SCHEMA = 1


def git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=False, timeout=10)
    except OSError:
        return None
    return done.stdout.strip() or None


def envelope(data: dict[str, Any], *, name: str) -> dict[str, Any]:
    return {"suite": "escape-apartment-soak", "schema": SCHEMA, "name": name,
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"), "git": git_commit(), **data}


def write(report: dict[str, Any], results_dir: Path = RESULTS_DIR) -> tuple[Path, Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = report["timestamp"].replace(":", "").replace("-", "")
    base = f"{report['name']}-{stamp}"
    json_path = results_dir / f"{base}.json"
    md_path = results_dir / f"{base}.md"
    text = json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False)
    json_path.write_text(text, encoding="utf-8")
    (results_dir / "latest.json").write_text(text, encoding="utf-8")
    md = markdown(report)
    md_path.write_text(md, encoding="utf-8")
    (results_dir / "latest.md").write_text(md, encoding="utf-8")
    return json_path, md_path


def _v(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def failed_total(report: dict[str, Any]) -> int:
    """Failures of the checks, the known bugs' aside (they have their xfail test)."""
    known = report["checks"].get("known", {})
    return sum(n for name, n in report["checks"]["failed"].items() if name not in known)


def markdown(report: dict[str, Any]) -> str:
    opts = report["options"]
    played = report["played"]
    out = [f"# Soak: {played['sessions']} session(s) over real processes",
           "",
           f"- run {report['timestamp']}, commit {report.get('git') or '?'}, seed {opts['seed']}, "
           f"{'quick' if opts['quick'] else 'full'}; {report['duration_s']} s in all",
           f"- game: the shipped one with `duration_min: {opts['duration_min']}`; calendar "
           f"{'on' if opts['calendar'] else 'off'}; libfaketime sleep fix "
           f"{'on' if opts['sleep_fix'] else 'off'}"
           + ("" if report.get("disk_full_possible", True) else
              "; **no full disk** (mounting the tmpfs needs root)"),
           f"- sessions: **{played['won']} won, {played['time_up']} time up, {played['aborted']} stopped**"
           + (f", {played['unfinished']} unfinished" if played["unfinished"] else ""),
           f"- faults injected: **{len(report['faults']['records'])}**; invariant checks: "
           f"**{sum(report['checks']['runs'].values())} run, {failed_total(report)} failed**",
           f"- lost: {report['lost']['events']} event(s), "
           f"{len(report['lost']['sessions_missing'])} session problem(s), "
           f"{len(report['lost']['solved_lost'])} solved puzzle(s)",
           "", "## Sessions", "",
           "| # | date | parcours | group | plan | result | solved | clues | budget (expected) | "
           "events (lost) | repeated | faults |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in report["sessions"]:
        group = f"{s['players']}{' + enfants' if s['children'] else ''}"
        plan = s["outcome"] + (", urgence" if s["emergency"] else "")
        budget = f"{_v(s['final_budget'])} ({_v(s['expected_budget'])})"
        out.append(f"| {s['n']} | {s['date']} | {s['parcours']} | {group} | {plan} | "
                   f"{_v(s['result'])}{' ⚠ ' + s['error'][:60] if s['error'] else ''} | {s['solved']} | "
                   f"{s['clues_sent']} | {budget} | {s['events']} ({len(s['events_lost'])}) | "
                   f"{s['gestures_repeated']} | "
                   f"{', '.join(f'#{n}' for n in s['faults']) or '—'} |")
    out += ["", "## Faults", "",
            "| kind | injected | recovered | recovery min | median | max (s) |",
            "|---|---|---|---|---|---|"]
    for kind, k in report["faults"]["by_kind"].items():
        r = k["recovery_s"]
        out.append(f"| {kind} | {k['injected']} | {k['recovered']} | {_v(r['min'])} | "
                   f"{_v(r['median'])} | {_v(r['max'])} |")
    out += ["", "| # | at (s) | kind | target | session | phase | down (s) | recovery (s) | note |",
            "|---|---|---|---|---|---|---|---|---|"]
    for f in report["faults"]["records"]:
        out.append(f"| {f['n']} | {_v(f['injected_at'])} | {f['kind']} | {f['target']} | "
                   f"{_v(f['session'])} | {_v(f['phase'])} | {_v(f['down_s'])} | {_v(f['recovery_s'])} | "
                   f"{f['detail']} |")
    rel = report.get("release_s") or {}
    out += ["", f"Release after an emergency, an end or an abort, order → last maglock reported "
                f"released: min {_v(rel.get('min'))} s, median {_v(rel.get('median'))} s, "
                f"max {_v(rel.get('max'))} s.",
            "", f"Ended emergencies the broker handed back (its old save, after a kill): "
                f"{report.get('ghost_emergencies', 0)} (each judged by `ended_emergency_stays_ended`).",
            "", "## Invariant checks", "", "| check | runs | failed |", "|---|---|---|"]
    known = report["checks"].get("known", {})
    for name, runs in report["checks"]["runs"].items():
        note = f" (known bug: `{known[name]}`)" if name in known and report["checks"]["failed"][name] else ""
        out.append(f"| {name} | {runs} | {report['checks']['failed'][name]}{note} |")
    failures = report["checks"]["failures"]
    if failures:
        out += ["", "### Failures", ""]
        out += [f"- `{f['check']}` (session {_v(f['session'])}, {f['at_s']} s): {f['detail']}"
                for f in failures[:100]]
    if report["process_exits"] or report["log_alarms"]:
        out += ["", "## Processes", ""]
        out += [f"- exited by itself: {e}" for e in report["process_exits"]]
        out += [f"- log: `{a}`" for a in report["log_alarms"][:40]]
    if report["faults"]["injector_errors"]:
        out += ["", "## Injector errors", "", "```", *report["faults"]["injector_errors"], "```"]
    out.append("")
    return "\n".join(out)


def summary(report: dict[str, Any]) -> str:
    played = report["played"]
    lines = [f"\nsoak: {played['sessions']} sessions ({played['won']} won, {played['time_up']} time up, "
             f"{played['aborted']} stopped) in {report['duration_s']} s",
             f"faults: {len(report['faults']['records'])} injected"]
    for kind, k in report["faults"]["by_kind"].items():
        if k["injected"]:
            r = k["recovery_s"]
            lines.append(f"   {kind:<16} {k['injected']:>3}  recovered in {_v(r['min'])}/{_v(r['median'])}/"
                         f"{_v(r['max'])} s (min/median/max)")
    lines.append(f"checks: {sum(report['checks']['runs'].values())} run, {failed_total(report)} failed")
    known = report["checks"].get("known", {})
    for name, n in report["checks"]["failed"].items():
        if n:
            lines.append(f"   {'known bug' if name in known else 'FAILED'} {name}: {n}"
                         + (f" ({known[name]})" if name in known else ""))
    lines.append(f"lost: {report['lost']['events']} events, {len(report['lost']['sessions_missing'])} "
                 f"session problems, {len(report['lost']['solved_lost'])} solved puzzles")
    return "\n".join(lines)
