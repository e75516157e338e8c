// Suivi téléphonique: the calls due a month after the workshop (GET /api/followup/calls),
// the questionnaire as the API gives it, the call recorded (the number is erased then), and
// a household's erasure on request. Every reading is audited by the server.
"use strict";
const {t, el} = App;
const $ = (id) => document.getElementById(id);
let calls = [], due = new Set(), questionnaire = null, current = null;

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

function status(c) {
  if (c.erased_why === "called") return t("followup_status_called", {date: dayOf(c.called_at)});
  if (c.erased_why === "retention") return t("followup_status_retention", {date: dayOf(c.erased_at)});
  if (c.erased_why === "request") return t("followup_status_request", {date: dayOf(c.erased_at)});
  if (c.erased_why === "restore") return t("followup_status_restore", {date: dayOf(c.erased_at)});
  if (!due.has(c.id)) return t("followup_status_later", {date: dayOf(c.due_at), erase: dayOf(c.erase_at)});
  return t("followup_status_due", {erase: dayOf(c.erase_at)});
}

function render() {
  $("calls").tBodies[0].replaceChildren(...calls.map((c) => el("tr", {dataset: {contact: c.id}},
    el("td", {}, longDate(c.session_date)), el("td", {class: "nowrap phone"}, c.phone ? spaced(c.phone) : "—"),
    el("td", {class: "status"}, status(c)),
    el("td", {}, el("div", {class: "row"},
      due.has(c.id) ? el("button", {class: "primary open-call", onclick: () => openCall(c)}, t("followup_open")) : null,
      el("button", {class: "export", onclick: () => exportOne(c)}, t("followup_export")),
      c.erased_why === "request" ? null
        : el("button", {class: "erase", onclick: () => erase(c)}, t("followup_erase")))))));
  $("no-calls").classList.toggle("hidden", calls.length > 0);
  if (current) renderCall();
}
window.render = render;

// The labels are drawn by renderCall, so that a change of language keeps the answers given.
function question(q) {
  const name = `q-${q.id}`;
  const radio = (value) => el("label", {class: "choice"},
    el("input", {type: "radio", name, value: String(value)}), " ", el("span", {class: "opt"}));
  let input;
  if (q.kind === "scale") input = el("div", {class: "row"}, ...[1, 2, 3, 4, 5].map(radio));
  else if (q.kind === "yes_no") input = el("div", {class: "row"}, radio("true"), radio("false"));
  else if (q.kind === "choice") input = el("div", {class: "row"}, ...q.options.map((_o, i) => radio(i)));
  else input = el("textarea", {name, rows: "2", maxlength: "1000"});
  return el("fieldset", {dataset: {question: q.id, kind: q.kind}}, el("legend", {}), input);
}

function labels(q) {
  if (q.kind === "scale") return ["1", "2", "3", "4", "5"];
  if (q.kind === "yes_no") return [t("yes"), t("no")];
  return optionsOf(q);
}

function renderCall() {
  $("call-phone").textContent = spaced(current.phone);
  $("call-for").textContent = t("followup_call_for", {date: longDate(current.session_date)});
  for (const q of questionnaire.questions) {
    const box = document.querySelector(`#questions [data-question="${q.id}"]`);
    box.querySelector("legend").textContent = textOf(q);
    const words = labels(q);
    box.querySelectorAll(".opt").forEach((span, i) => { span.textContent = words[i]; });
  }
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
  if (!confirm(t("followup_erase_confirm", {phone: c.phone ? spaced(c.phone) : "—", date: longDate(c.session_date)}))) return;
  if ((await App.api("DELETE", `/api/followup/contacts/${c.id}`)).ok) {
    if (current && current.id === c.id) close();
    App.toast(t("followup_erased"));
    load();
  }
}

// The right of access: everything kept about one household, and every access, as a file.
async function exportOne(c) {
  const r = await App.api("GET", `/api/followup/contacts/${c.id}`);
  if (!r.ok) return;
  const link = el("a", {download: `suivi-foyer-${c.id}.json`,
    href: URL.createObjectURL(new Blob([JSON.stringify(r.data, null, 2)], {type: "application/json"}))});
  document.body.append(link);
  link.click();
  link.remove();
}

async function load() {
  const r = await App.api("GET", "/api/followup/calls");
  if (r.ok) { calls = r.data.contacts; due = new Set(calls.map((c) => c.id)); }
  if ($("show-all").checked) {
    const all = await App.api("GET", "/api/followup/calls?all=true");
    if (all.ok) calls = all.data.contacts;
  }
  render();
  document.body.dataset.loaded = String(Date.now());
}

$("call-form").onsubmit = save;
$("show-all").onchange = load;
$("call-close").onclick = close;
$("emergency").onclick = () => App.emergency("maître du jeu");
App.loadTexts().then(async () => {
  App.setupLangSwitch();
  const q = await App.api("GET", "/api/followup/questionnaire");
  if (q.ok) questionnaire = q.data;
  load();
});
