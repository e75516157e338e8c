// Debrief screen: what the group did, theme by theme, and the household budget.
// GET /api/game/debrief (current or last session, live) or, with ?session=ID,
// GET /api/history/sessions/ID/debrief (a past session). Computed by controller/debrief.py.
"use strict";
const {t, el, fmt} = App;
const $ = (id) => document.getElementById(id);
const sessionId = new URLSearchParams(location.search).get("session");
let data = null;
// numbers and dates as the page's language writes them: « 1 450 € », « 4 déc. 13:04 »
const locale = () => (App.lang === "en" ? "en-GB" : "fr-FR");
const num = (n) => Math.abs(n).toLocaleString(locale());
const euros = (n) => (n === null || n === undefined ? "—" : `${n < 0 ? "−" : ""}${num(n)}`);
const signed = (n) => `${n > 0 ? "+" : n < 0 ? "−" : ""}${num(n)} €`;
const when = (ts) => new Date(ts * 1000).toLocaleString(locale(),
  {day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit"});

// a theme as the words file names it (config/sheet.yaml), in the page's language
const themeName = (th) => [th.icon, App.lang === "en" ? th.title_en : th.title].filter(Boolean).join(" ");

function resultText(s) {
  if (s.result) return t(`result_${s.result}`);
  return s.started_at ? t("result_running") : t("result_none");
}

function render() {
  if (!data) return;
  const en = App.lang === "en";
  const s = data.session;
  $("content").classList.remove("hidden");
  $("empty").classList.add("hidden");
  const result = $("result");
  result.textContent = resultText(s);
  result.dataset.result = s.result || "";
  $("total-time").textContent = s.time_used_s === null ? "—" : fmt(s.time_used_s);
  $("total-time-of").textContent = s.duration_s ? t("of_time", {min: Math.round(s.duration_s / 60)}) : "";
  $("found").textContent = `${data.solved} / ${data.puzzles_total}`;
  $("found-detail").textContent = [
    data.forced ? `${data.forced} ${t("outcome_forced")}` : "",
    data.skipped ? `${data.skipped} ${t("outcome_skipped")}` : ""].filter(Boolean).join(" · ");
  $("clue-count").textContent = data.clues;
  $("clue-cost").textContent = data.clue_cost ? t("clue_cost", {euros: data.clue_cost}) : "";
  $("final-budget").textContent = euros(data.budget.final);
  $("budget-from").textContent = data.budget.start === null ? "" :
    `${t("budget_from", {start: euros(data.budget.start)})} (${signed(data.budget.change || 0)})` +
    (data.budget.late ? ` · ${t("debrief_late_total", {euros: `${euros(data.budget.late)} €`})}` : "");
  $("group").textContent = [t("players_n", {n: s.players}), s.children ? t("with_children") : ""].filter(Boolean).join(", ");
  $("parcours").textContent = s.parcours ? t(s.parcours) : "—";
  $("session-date").textContent = s.started_at ? when(s.started_at) : s.date || "";

  $("themes").replaceChildren(...data.themes.map((th) => el("article", {class: "theme", dataset: {theme: th.theme}},
    el("h3", {}, themeName(th)),
    el("p", {class: "theme-sum"},
      el("strong", {class: "found"}, t("found_n", {n: th.solved, total: th.total})),
      th.time_s !== null ? ` · ⏱ ${t("col_time")} ${fmt(th.time_s)}` : "",
      ` · 💡 ${t("col_clues")} : ${th.clues}`,
      th.budget ? ` · ${t("col_budget")} ${signed(th.budget)}` : ""),
    el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, t("col_puzzle")), el("th", {}, t("col_result")),
        el("th", {class: "num"}, t("col_time")), el("th", {class: "num"}, t("col_clues")))),
      el("tbody", {}, ...th.puzzles.map((p) => el("tr", {dataset: {puzzle: p.id, outcome: p.outcome}},
        el("td", {}, en ? p.label_en : p.label, el("small", {}, ` — ${en ? p.room_label_en : p.room_label}`)),
        el("td", {class: `outcome ${p.outcome}`}, t(`outcome_${p.outcome}`)),
        el("td", {class: "num"}, p.time_s === null ? "—" : fmt(p.time_s)),
        el("td", {class: "num"}, String(p.clues)))))))));

  const b = data.budget;
  const rows = [el("tr", {class: "start"}, el("td", {}, "00:00"), el("td", {}, t("budget_month_start")),
    el("td", {class: "num"}, ""), el("td", {class: "num"}, `${euros(b.start)} €`))];
  for (const line of b.history) {
    rows.push(el("tr", {dataset: {puzzle: line.puzzle || "", kind: line.kind || ""}}, el("td", {}, fmt(line.at_s)), el("td", {}, en ? line.label_en : line.label),
      el("td", {class: `num ${line.amount < 0 ? "minus" : "plus"}`}, signed(line.amount)),
      el("td", {class: "num"}, `${euros(line.balance)} €`)));
  }
  rows.push(el("tr", {class: "end"}, el("td", {}, s.time_used_s === null ? "" : fmt(s.time_used_s)),
    el("td", {}, t("budget_end")), el("td", {class: "num"}, ""), el("td", {class: "num", id: "budget-end"}, `${euros(b.final)} €`)));
  document.querySelector("#budget-lines tbody").replaceChildren(...rows);
  drawChart(b);
  renderBills(b.bills);
  renderEvaluation(s);
  renderConsent(s);
}

// The month's bills: paid during the game, or charged at the end with the late fee, and
// what an unpaid bill leads to (the game file's words).
function renderBills(bills) {
  const en = App.lang === "en";
  $("bills").classList.toggle("hidden", !bills.length);
  $("bills-list").replaceChildren(...bills.map((b) => {
    const why = en ? b.late_fee_label_en : b.late_fee_label;
    const status = b.status === "paid" ? t("debrief_bill_paid", {amount: `${euros(b.paid)} €`})
      : b.status === "due" ? t("debrief_bill_due")
        : t(b.late_fee ? "debrief_bill_charged" : "debrief_bill_charged_nofee",
          {amount: `${euros(b.charged)} €`, fee: `${euros(b.late_fee)} €`, why: why || ""});
    const consequence = b.status === "charged" ? (en ? b.consequence_en : b.consequence) : null;
    return el("li", {dataset: {bill: b.id, status: b.status}},
      el("span", {class: "pict", "aria-hidden": "true"}, b.icon), " ",
      el("strong", {}, en ? b.label_en : b.label), " — ", el("span", {class: "st"}, status),
      consequence ? el("p", {class: "consequence"}, consequence) : null);
  }));
}

// Presentation mode: the debrief shown to the group, without the game master's controls
// (emergency button, navigation, language, the group's evaluation form). « Présenter »
// enters it (?present in the URL); the browser's back, Escape, or on a tablet without a
// keyboard a long press on the page's title (nothing a participant would see) leaves it.
const HOLD_TO_LEAVE_MS = 1000;
function presenting() { return new URLSearchParams(location.search).has("present"); }
function setPresenting() { document.body.classList.toggle("presenting", presenting()); }
function present(on) {
  const url = new URL(location.href);
  if (on) url.searchParams.set("present", "1"); else url.searchParams.delete("present");
  history.pushState(null, "", url);
  setPresenting();
}
$("present").onclick = () => present(true);
window.addEventListener("popstate", setPresenting);
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && presenting()) present(false); });
{
  const title = document.querySelector("header h1");
  let hold = null;
  const cancel = () => { clearTimeout(hold); hold = null; };
  title.addEventListener("pointerdown", () => {
    if (presenting()) hold = setTimeout(() => { hold = null; present(false); }, HOLD_TO_LEAVE_MS);
  });
  for (const ev of ["pointerup", "pointerleave", "pointercancel"]) title.addEventListener(ev, cancel);
}
setPresenting();

// The group's evaluation of a finished session: a rating, what they learned, their words.
// The form is filled from the server only while the game master has not started editing.
const RATINGS = [1, 2, 3, 4, 5];
let evalDirty = false;
function renderEvaluation(s) {
  const ended = ["won", "lost", "aborted"].includes(s.result);
  $("evaluation").classList.toggle("hidden", !ended);
  if (!ended || evalDirty) return;
  const saved = data.evaluation;
  $("eval-ratings").replaceChildren(...RATINGS.map((n) => el("label", {class: "choice"},
    el("input", {type: "radio", name: "rating", value: String(n), checked: saved && saved.rating === n ? "" : null}),
    ` ${n} — ${t(`eval_rating_${n}`)}`)));
  const themes = data.themes.filter((th) => th.theme !== "story");
  $("eval-themes").replaceChildren(...themes.map((th) => el("label", {class: "choice"},
    el("input", {type: "checkbox", name: "learned", value: th.theme, checked: saved && saved.learned.includes(th.theme) ? "" : null}),
    ` ${themeName(th)}`)));
  $("eval-comment").value = saved ? saved.comment : "";
  $("eval-status").textContent = saved
    ? `✔ ${t("eval_saved_by", {who: App.actor(saved.who), at: new Date(saved.at * 1000).toLocaleString(App.lang)})}` : "";
}
$("eval-form").oninput = () => { evalDirty = true; $("eval-status").textContent = `✎ ${t("eval_unsaved")}`; };
$("eval-form").onsubmit = async (ev) => {
  ev.preventDefault();
  const rating = document.querySelector('input[name="rating"]:checked');
  if (!rating) { $("eval-status").textContent = `⚠ ${t("eval_need_rating")}`; return; }
  const body = {rating: Number(rating.value), comment: $("eval-comment").value,
                learned: [...document.querySelectorAll('input[name="learned"]:checked')].map((i) => i.value)};
  const r = await App.api("PUT", `/api/history/sessions/${encodeURIComponent(data.session.id)}/evaluation`, body);
  if (r.ok) { evalDirty = false; data.evaluation = r.data; renderEvaluation(data.session); }
};

// A household's consent to the follow-up call: the purpose said in the questionnaire
// file's words, a number, and the tick box: no number is sent without it.
let purpose = null;
// the follow-up is the game master's role only (GDPR): not offered to the technician
let mayFollowUp = false;
App.api("GET", "/api/me").then((r) => { mayFollowUp = r.ok && r.data.role === "gm"; if (data) render(); });
function renderConsent(s) {
  const ended = mayFollowUp && ["won", "lost", "aborted"].includes(s.result);
  $("consent").classList.toggle("hidden", !ended);
  if (!ended) return;
  if (!purpose) {
    purpose = {};   // asked once
    App.api("GET", "/api/followup/questionnaire").then((r) => { if (r.ok) { purpose = r.data; renderConsent(data.session); } });
  }
  $("consent-purpose").textContent = (App.lang === "en" && purpose.purpose_en) || purpose.purpose || "";
}
$("consent-form").onsubmit = async (ev) => {
  ev.preventDefault();
  if (!$("consent-agree").checked) { $("consent-status").textContent = `⚠ ${t("consent_need")}`; return; }
  const r = await App.post(`/api/followup/sessions/${encodeURIComponent(data.session.id)}/contacts`,
    {phone: $("consent-phone").value, consent: true});
  if (!r.ok) return;
  const day = (ts) => new Date(ts * 1000).toLocaleDateString(locale(), {day: "numeric", month: "long", year: "numeric"});
  $("consent-phone").value = "";
  $("consent-agree").checked = false;
  $("consent-status").textContent = `✔ ${t("consent_saved", {date: day(r.data.due_at), erase: day(r.data.erase_at)})}`;
};

// The balance after each line, as a step line (the table beside it says the same in words).
function drawChart(b) {
  const svg = $("budget-chart");
  const values = [b.start ?? 0, ...b.history.map((l) => l.balance)];
  const max = Math.max(...values, 1), min = Math.min(...values, 0);
  const x = (i) => 10 + (580 * i) / Math.max(values.length - 1, 1);
  const y = (v) => 190 - (180 * (v - min)) / Math.max(max - min, 1);
  let d = `M ${x(0)} ${y(values[0])}`;
  values.slice(1).forEach((v, i) => { d += ` H ${x(i + 1)} V ${y(v)}`; });
  const ns = "http://www.w3.org/2000/svg";
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d);
  path.setAttribute("class", "line");
  const dots = values.map((v, i) => {
    const c = document.createElementNS(ns, "circle");
    c.setAttribute("cx", x(i)); c.setAttribute("cy", y(v)); c.setAttribute("r", 5);
    return c;
  });
  svg.setAttribute("aria-label", `${t("budget")} : ${values.join(" → ")} €`);
  svg.replaceChildren(path, ...dots);
}
window.render = render;

async function load() {
  const url = sessionId ? `/api/history/sessions/${encodeURIComponent(sessionId)}/debrief` : "/api/game/debrief";
  const res = await fetch(url, {headers: {"Content-Type": "application/json"}});
  if (res.status === 401) { location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`; return; }
  if (res.status === 404) { $("empty").classList.remove("hidden"); $("content").classList.add("hidden"); return; }
  if (!res.ok) return;
  data = await res.json();
  document.body.dataset.session = data.session.id;
  const sheet = $("print-sheet");
  sheet.href = `/sheet/${encodeURIComponent(data.session.id)}`;
  sheet.classList.remove("hidden");
  render();
  loadSteps();
}

// The debrief that teaches (debrief_steps.js draws the page): the game master steps
// through it, the room screens show the same page; the group's answers are counters.
let steps = null;
const stepsUrl = () => `/api/debrief/${encodeURIComponent(data.session.id)}`;
async function loadSteps() {
  const r = await App.api("GET", stepsUrl());
  if (r.ok) { steps = r.data; drawSteps(); }
}
function drawSteps() {
  const box = $("steps");
  box.classList.toggle("hidden", !steps || !steps.ended);
  if (!steps || !steps.ended) return;
  DebriefSteps.draw($("step-page"), steps, {onCount: count});
  $("step-prev").disabled = steps.page === 0;
  $("step-next").disabled = steps.page === steps.pages.length - 1;
  $("step-pages").replaceChildren(...steps.pages.map((p, i) => el("li", {},
    el("button", {type: "button", class: i === steps.page ? "current" : "", "aria-current": i === steps.page ? "step" : null,
                  title: p.kind === "theme" ? p.title : t(`step_title_${p.kind}`),
                  onclick: () => goTo(i)}, p.kind === "theme" ? p.icon : String(p.step)))));
}
async function goTo(page) {
  const r = await App.api("PUT", `${stepsUrl()}/page`, {page});
  if (r.ok) { steps = r.data; drawSteps(); }
}
async function count(step, choice, n) {
  const counts = {...steps.answers[step], [choice]: Math.max(n, 0)};
  const r = await App.api("PUT", `${stepsUrl()}/answers`, {[step]: counts});
  if (r.ok) { steps = r.data; drawSteps(); $("step-status").textContent = t("steps_saved"); }
}
$("step-prev").onclick = () => goTo(steps.page - 1);
$("step-next").onclick = () => goTo(steps.page + 1);
// the take-home sheet, printed or as the controller's PDF, in the page's language
function sheetLinks() {
  if (!data) return;
  const base = `/sheet/${encodeURIComponent(data.session.id)}`;
  const lang = App.lang === "en" ? "?lang=en" : "";
  $("print-sheet").href = `${base}${lang}`;
  $("pdf-sheet").href = `${base}.pdf${lang}`;
  $("pdf-sheet").classList.remove("hidden");
}
// (a script's top-level function is window's: the page's render is kept before wrapping it)
const renderDebrief = render;
window.render = () => { renderDebrief(); drawSteps(); sheetLinks(); };

$("emergency").onclick = () => App.emergency("maître du jeu");
App.loadTexts().then(async () => {
  App.setupLangSwitch();
  await load();
  if (!sessionId) {
    // the current session: follow it live (a solve, a clue, the end of the game)
    let last = null;
    $("link").classList.remove("hidden");
    App.live((snap) => {
      const g = snap.game;
      const key = [g.session, g.phase, g.budget, g.clue_count, g.puzzles.filter((p) => p.status === "solved").length].join("|");
      if (key !== last) { last = key; load(); }
    }, App.linkBadge($("link")));
  }
});
