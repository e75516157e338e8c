// History: past sessions with filters, per-puzzle statistics, CSV downloads, debrief links.
"use strict";
const {t, el, fmt} = App;
const $ = (id) => document.getElementById(id);
let sessions = [], stats = null;
const pct = (x) => (x === null || x === undefined ? "—" : `${Math.round(x * 100)} %`);

function query() {
  const q = new URLSearchParams();
  if ($("from").value) q.set("from", $("from").value);
  if ($("to").value) q.set("to", $("to").value);
  if ($("parcours-filter").value) q.set("parcours", $("parcours-filter").value);
  return q.toString();
}

function resultText(r) {
  return r.result ? t(`result_${r.result}`) : t("result_running");
}

function render() {
  $("sessions").tBodies[0].replaceChildren(...sessions.map((s) => el("tr", {dataset: {session: s.id, result: s.result || ""}},
    el("td", {}, s.started || s.date),
    el("td", {}, t(s.parcours)),
    el("td", {class: "num"}, `${s.players}${s.children ? " 👧" : ""}`),
    el("td", {}, resultText(s)),
    el("td", {class: "num"}, s.time_used_s === null ? "—" : fmt(s.time_used_s)),
    el("td", {class: "num"}, String(s.clues)),
    el("td", {class: "num"}, s.final_budget === null ? "—" : `${s.final_budget} €`),
    el("td", {class: "num rating"}, s.rating ? `${s.rating} / 5` : "—"),
    el("td", {}, el("a", {class: "button", href: `/debrief?session=${encodeURIComponent(s.id)}`}, t("open_debrief"))))));
  $("no-sessions").classList.toggle("hidden", sessions.length > 0);
  if (!stats) return;
  $("summary").textContent = t("stats_summary", {sessions: stats.sessions, participants: stats.participants,
                                                 rate: pct(stats.success_rate)})
    + (stats.evaluations && stats.evaluations.count
      ? ` · ${t("stats_evaluations", {n: stats.evaluations.count, avg: stats.evaluations.average_rating})}` : "");
  $("puzzle-stats").tBodies[0].replaceChildren(...stats.puzzles.map((p) => el("tr", {dataset: {puzzle: p.id}},
    el("td", {}, p.label), el("td", {}, p.theme ? [p.icon, App.lang === "en" ? p.title_en : p.title].filter(Boolean).join(" ") : ""), el("td", {class: "num"}, String(p.sessions)),
    el("td", {class: "num"}, pct(p.solve_rate)),
    el("td", {class: "num"}, p.median_time_s === null || p.median_time_s === undefined ? "—" : fmt(p.median_time_s)),
    el("td", {class: "num"}, p.average_clues === null ? "—" : String(p.average_clues)))));
}
window.render = render;

async function load() {
  const q = query();
  const suffix = q ? `?${q}` : "";
  $("csv-sessions").href = `/api/history/sessions.csv${suffix}`;
  $("csv-puzzles").href = `/api/history/puzzles.csv${suffix}`;
  history.replaceState(null, "", `/history${suffix}`);
  const [a, b] = await Promise.all([App.api("GET", `/api/history/sessions${suffix}`), App.api("GET", `/api/history/stats${suffix}`)]);
  if (a.ok) sessions = a.data.sessions;
  if (b.ok) stats = b.data;
  render();
  document.body.dataset.loaded = q || "all";
}

$("filters").onsubmit = (ev) => { ev.preventDefault(); load(); };
$("emergency").onclick = () => App.emergency("maître du jeu");
App.loadTexts().then(() => {
  const q = new URLSearchParams(location.search);
  $("from").value = q.get("from") || "";
  $("to").value = q.get("to") || "";
  $("parcours-filter").value = q.get("parcours") || "";
  App.setupLangSwitch();
  load();
});
