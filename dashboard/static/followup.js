// Suivi téléphonique: the calls due a month after the workshop (GET /api/followup/calls),
// the questionnaire as the API gives it, the call recorded (the number is erased then), and
// a household's erasure on request. Every reading is audited by the server.
"use strict";
const {t, el} = App;
const $ = (id) => document.getElementById(id);
let calls = [], questionnaire = null, current = null;

const locale = () => (App.lang === "en" ? "en-GB" : "fr-FR");
function longDate(iso) {
  const [y, m, d] = iso.split("-").map(Number);
  return new Date(y, m - 1, d).toLocaleDateString(locale(), {weekday: "long", day: "numeric", month: "long", year: "numeric"});
}
const dayOf = (ts) => new Date(ts * 1000).toLocaleDateString(locale(), {day: "numeric", month: "long", year: "numeric"});
// 0612345678 → 06 12 34 56 78, the way it is read aloud
const spaced = (phone) => phone.replace(/(\d{2})(?=\d)/g, "$1 ");
const textOf = (q) => (App.lang === "en" && q.text_en ? q.text_en : q.text);
const optionsOf = (q) => q.options.map((o, i) => (App.lang === "en" && q.options_en[i] ? q.options_en[i] : o));

function render() {
  $("calls").tBodies[0].replaceChildren(...calls.map((c) => el("tr", {dataset: {contact: c.id}},
    el("td", {}, longDate(c.session_date)), el("td", {class: "nowrap phone"}, spaced(c.phone)),
    el("td", {}, dayOf(c.erase_at)),
    el("td", {}, el("div", {class: "row"},
      el("button", {class: "primary open-call", onclick: () => openCall(c)}, t("followup_open")),
      el("button", {class: "erase", onclick: () => erase(c)}, t("followup_erase")))))));
  $("no-calls").classList.toggle("hidden", calls.length > 0);
  if (current) renderCall();
}
window.render = render;

function question(q) {
  const name = `q-${q.id}`;
  const radio = (value, label) => el("label", {class: "choice"},
    el("input", {type: "radio", name, value: String(value)}), ` ${label}`);
  let input;
  if (q.kind === "scale") input = el("div", {class: "row"}, ...[1, 2, 3, 4, 5].map((n) => radio(n, String(n))));
  else if (q.kind === "yes_no") input = el("div", {class: "row"}, radio("true", t("yes")), radio("false", t("no")));
  else if (q.kind === "choice") input = el("div", {class: "row"}, ...optionsOf(q).map((o, i) => radio(i, o)));
  else input = el("textarea", {name, rows: "2", maxlength: "2000"});
  return el("fieldset", {dataset: {question: q.id, kind: q.kind}}, el("legend", {}, textOf(q)), input);
}

function renderCall() {
  $("call-phone").textContent = spaced(current.phone);
  $("call-for").textContent = t("followup_call_for", {date: longDate(current.session_date)});
}

function openCall(c) {
  current = c;
  $("questions").replaceChildren(...questionnaire.questions.map(question));
  renderCall();
  $("call").classList.remove("hidden");
  $("call").scrollIntoView();
}

function answers() {
  const out = {};
  for (const q of questionnaire.questions) {
    if (q.kind === "text") {
      const v = document.querySelector(`textarea[name="q-${q.id}"]`).value.trim();
      if (v) out[q.id] = v;
      continue;
    }
    const picked = document.querySelector(`input[name="q-${q.id}"]:checked`);
    if (!picked) continue;   // a question the household did not answer stays unanswered
    out[q.id] = q.kind === "yes_no" ? picked.value === "true" : Number(picked.value);
  }
  return out;
}

async function save(ev) {
  ev.preventDefault();
  const r = await App.post(`/api/followup/contacts/${current.id}/call`, {answers: answers()});
  if (r.ok) { close(); App.toast(t("followup_saved")); load(); }
}

function close() { current = null; $("call").classList.add("hidden"); }

async function erase(c) {
  if (!confirm(t("followup_erase_confirm", {phone: spaced(c.phone), date: longDate(c.session_date)}))) return;
  if ((await App.api("DELETE", `/api/followup/contacts/${c.id}`)).ok) {
    if (current && current.id === c.id) close();
    App.toast(t("followup_erased"));
    load();
  }
}

async function load() {
  const r = await App.api("GET", "/api/followup/calls");
  if (r.ok) calls = r.data.contacts;
  render();
  document.body.dataset.loaded = String(Date.now());
}

$("call-form").onsubmit = save;
$("call-close").onclick = close;
$("emergency").onclick = () => App.emergency("maître du jeu");
App.loadTexts().then(async () => {
  App.setupLangSwitch();
  const q = await App.api("GET", "/api/followup/questionnaire");
  if (q.ok) questionnaire = q.data;
  load();
});
