// The room TV: read from 3 metres by a family, children from 8, some who read little
// French. Time, the state of the game in one word and a pictogram, the household budget
// (the last move and why, the month as a picture, the bills), the clues and messages of
// this room. Nothing to press: no staff control, only a small dot for the link.
// Its data: the screen view (controller/views.py, Views.screen_view), pushed live.
"use strict";
const $ = (id) => document.getElementById(id);
const {t, el, fmt} = App;
// the last minutes are announced (a banner, the timer in red, a beep)
const HURRY_S = 5 * 60;
// what each phase says, with its pictogram
const STATES = {
  idle: ["👋", "screen_state_idle"], check: ["⏳", "screen_state_soon"], briefing: ["👂", "screen_state_soon"],
  running: ["▶", "screen_state_running"], paused: ["⏸", "screen_state_paused"], won: ["🏆", "screen_state_won"],
  lost: ["⌛", "screen_state_lost"], aborted: ["■", "screen_state_aborted"], debrief: ["🗣", "screen_state_debrief"],
};
const BILL_STATUS = {paid: "✔", due: "⏳", charged: "⚠"};
let snap = null, audio = null, hurried = false;
const acked = new Set(), seen = new Set();

const en = () => App.lang === "en";
const money = (n) => `${Math.abs(n).toLocaleString(en() ? "en-GB" : "fr-FR")} €`;
const signed = (n) => `${n < 0 ? "−" : n > 0 ? "+" : ""}${money(n)}`;

// Sound: a kiosk runs Chromium with --autoplay-policy=no-user-gesture-required; elsewhere
// the first touch anywhere on the screen allows it (no button: nothing to press).
function allowSound() {
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume();
  } catch (_e) { audio = null; }
}
function beep(times = 1) {
  if (!audio || audio.state !== "running") return;
  if (MediaCues.muted) return;   // the console's « Couper le son partout » silences the chime too
  for (let i = 0; i < times; i++) {
    const o = audio.createOscillator(), g = audio.createGain(), at = audio.currentTime + i * 0.45;
    o.frequency.value = 880; g.gain.value = 0.2 * MediaCues.volume; o.connect(g); g.connect(audio.destination);
    o.start(at); o.stop(at + MediaCues.BEEP_MS / 1000);
  }
}
document.addEventListener("click", allowSound);   // not pointerdown: a finger counts once lifted (media.js)

function drawTime() {
  const g = snap.game;
  $("remaining").textContent = fmt(g.remaining_s);
  const hurry = g.phase === "running" && g.remaining_s <= HURRY_S && g.remaining_s > 0;
  document.body.classList.toggle("hurry", hurry);
  $("hurry").classList.toggle("hidden", !hurry);
  if (hurry && !hurried) beep(3);
  hurried = hurry;
}

function drawBudget(g) {
  $("budget").textContent = `${g.budget < 0 ? "−" : ""}${money(g.budget)}`;
  $("budget").classList.toggle("minus", g.budget < 0);
  const last = g.last_change;
  $("last-change").replaceChildren(...(last ? [
    el("span", {class: last.amount < 0 ? "amount minus" : "amount plus"}, signed(last.amount)), " ",
    el("span", {class: "why"}, Profile.text(last.label, last.label_en))] : []));
  const m = g.month, whole = Math.max(m.income, m.spent, 1);
  $("bar-spent").style.width = `${(100 * Math.min(m.spent, whole)) / whole}%`;
  $("bar-left").style.width = `${(100 * Math.max(m.left, 0)) / whole}%`;
  $("income").textContent = `${t("screen_income")} ${money(m.income)}`;
  $("spent").textContent = `${t("screen_spent")} ${money(m.spent)}`;
  $("left").textContent = `${t("screen_left")} ${m.left < 0 ? "−" : ""}${money(m.left)}`;
  $("month").setAttribute("aria-label", t("screen_month_label",
    {income: money(m.income), spent: money(m.spent), left: `${m.left < 0 ? "−" : ""}${money(m.left)}`}));
  $("bills").classList.toggle("hidden", !g.bills.length);
  $("bills").replaceChildren(...g.bills.map((b) => el("li", {dataset: {bill: b.id, status: b.status}},
    el("span", {class: "pict", "aria-hidden": "true"}, b.icon),
    el("span", {class: "name"}, Profile.text(b.label, b.label_en)),
    el("span", {class: "st"}, `${BILL_STATUS[b.status]} ${
      b.status === "paid" ? t("screen_bill_paid")
        : b.status === "due" ? t("screen_bill_due", {amount: money(b.unpaid)})
          : t("screen_bill_charged", {amount: money(b.unpaid + b.late_fee)})}`))));
}

function drawMessages(g) {
  const text = (c) => Profile.text(c.text, c.text_en);   // profile.js: its language and wording
  // the clues that still matter first (the newest one marked new), then the game's
  // messages, then one old clue (its puzzle solved: no longer new)
  const open = g.clues.filter((c) => !c.done).reverse().slice(0, 2);
  const playing = ["running", "paused"].includes(g.phase);   // once over, nothing is new
  const done = g.clues.filter((c) => c.done).reverse().slice(0, 1);
  $("clues").replaceChildren(...open.map((c, i) =>
    el("div", {class: i === 0 && playing ? "clue new" : "clue", dataset: {clue: c.id}}, `${c.icon || "💡"} `, text(c))));
  $("notes").replaceChildren(
    ...g.messages.slice(-2).reverse().map((m) => el("div", {class: "clue note"}, "📣 ", text(m))),
    ...done.map((c) => el("div", {class: "clue done", dataset: {clue: c.id}}, "✔ ", text(c))));
  for (const c of g.clues) {
    if (!seen.has(c.id)) {
      seen.add(c.id);
      if (c.status !== "shown") { if (!g.clue_chime) beep(); showClueCard(c); }   // else the game's chime (media.js)
    }
    if (c.status !== "shown" && !acked.has(c.id)) {
      acked.add(c.id);
      App.post(`/api/clues/${encodeURIComponent(c.id)}/shown`, {}).then((r) => { if (!r.ok && r.status !== 404) acked.delete(c.id); });
    }
  }
}

// A new clue shown big for a while, with its pictogram: noticed from across the room, and
// understood by those who read little (its voice says it too: media.js)
const CARD_S = 15;
let cardTimer = null;
function showClueCard(c) {
  let card = $("clue-card");
  if (!card) {
    card = el("div", {id: "clue-card", class: "clue-card hidden", role: "alert"});
    document.body.append(card);
  }
  card.dataset.clue = c.id;
  card.replaceChildren(el("div", {class: "pict", "aria-hidden": "true"}, c.icon || "💡"),
    el("p", {class: "text"}, Profile.text(c.text, c.text_en)));
  card.classList.remove("hidden");
  clearTimeout(cardTimer);
  cardTimer = setTimeout(hideClueCard, CARD_S * 1000);
}
function hideClueCard() {
  const card = $("clue-card");
  if (card) { card.classList.add("hidden"); card.replaceChildren(); delete card.dataset.clue; }
}
// a clue no longer among this room's (a new session, the emergency): its card goes too
function dropStaleClueCard(g) {
  const card = $("clue-card");
  if (card && card.dataset.clue && (g.emergency || !g.clues.some((c) => c.id === card.dataset.clue))) hideClueCard();
}

function render() {
  if (!snap) return;
  const g = snap.game, node = snap.nodes[0];
  document.body.dataset.phase = g.phase;
  Profile.apply(snap, render);   // profile.js: the group's profile (language, sizes, flash)
  document.body.classList.toggle("evacuating", g.emergency);
  $("evacuate").classList.toggle("hidden", !g.emergency);
  $("room-name").replaceChildren(node ? Profile.text(node.label, node.label_en) : (snap.room || t("screen")));
  $("apartment").replaceChildren(Profile.text(snap.apartment.name, snap.apartment.name_en));
  const [pict, key] = STATES[g.phase] || ["", "screen"];
  $("state-pict").textContent = pict;
  $("state-text").textContent = t(key);
  drawTime();
  drawBudget(g);
  drawMessages(g);
  MediaCues.update(g);   // media.js: the cues to play, the clues to speak
  drawDebrief();
  dropStaleClueCard(g);
}

// The debrief: the page the game master shows on the console, big (debrief_steps.js).
function drawDebrief() {
  const debrief = snap.debrief;
  document.body.classList.toggle("debriefing", Boolean(debrief));
  $("tv-debrief").classList.toggle("hidden", !debrief);
  if (debrief) DebriefSteps.draw($("tv-debrief"), debrief);
}
window.render = render;

// the link: a small dot, its words for a screen reader and a technician's hover
let up = null;
function drawDot() {
  if (up === null) return;
  const dot = $("link"), said = t(up ? "live" : "offline");
  dot.className = up ? "dot ok" : "dot off";
  dot.title = said;
  dot.setAttribute("aria-label", said);
}

// Between two pushes the screen counts down by itself while the timer runs.
setInterval(() => {
  if (!snap || !snap.game.timer_running) return;
  snap.game.remaining_s = Math.max(0, snap.game.remaining_s - 0.25);
  drawTime();
}, 250);

allowSound();
const wanted = new URLSearchParams(location.search).get("lang");   // a kiosk may say ?lang=en
// the link once the texts are in: a view drawn before would show their keys for a moment
(wanted && ["fr", "en"].includes(wanted) && wanted !== App.lang ? App.setLang(wanted) : App.loadTexts())
  .then(() => App.live((data) => { snap = data; render(); }, (u) => { up = u; drawDot(); }));
