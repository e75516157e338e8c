// Planning: the year's sessions (date, time, game master, parcours), the groups registered
// ahead, and « Préparer la partie », which opens the game's check with the planned group.
"use strict";
const {t, el} = App;
const $ = (id) => document.getElementById(id);
let planned = [], current = null;

function longDate(iso) {
  const [y, m, d] = iso.split("-").map(Number);
  return new Date(y, m - 1, d).toLocaleDateString(App.lang === "en" ? "en-GB" : "fr-FR",
    {weekday: "long", day: "numeric", month: "long", year: "numeric"});
}

function people(p) {
  if (!p.players) return t("plan_nobody");
  const parts = [t(p.adults > 1 ? "n_adults" : "n_adult", {n: p.adults})];
  if (p.children) parts.push(t(p.children > 1 ? "n_children" : "n_child", {n: p.children}));
  parts.push(t(p.households > 1 ? "n_households" : "n_household", {n: p.households}));
  return parts.join(", ");
}

function groupLine(g) {
  const who = [t(g.adults > 1 ? "n_adults" : "n_adult", {n: g.adults})];
  if (g.children) who.push(t(g.children > 1 ? "n_children" : "n_child", {n: g.children}));
  const referral = t(`referral_${g.referral}`);
  return el("li", {dataset: {group: g.id}}, `${who.join(", ")} · ${t(`tenancy_${g.tenancy}`)} · ${referral}`
    + (g.first_visit ? ` · ${t("group_first_visit")}` : ""),
  " ", el("button", {class: "remove-group", title: t("group_remove"), onclick: () => unregister(g)}, "✕"));
}

function actions(p) {
  if (p.session_id) {
    return el("td", {}, el("a", {class: "button", href: `/debrief?session=${encodeURIComponent(p.session_id)}`}, t("open_debrief")));
  }
  return el("td", {}, el("div", {class: "row"},
    el("button", {class: "register", onclick: () => openGroup(p), disabled: p.places_left === 0 ? "" : null}, t("group_register")),
    el("button", {class: "primary prepare", onclick: () => prepare(p), disabled: p.players === 0 ? "" : null}, t("plan_prepare")),
    el("button", {class: "cancel", onclick: () => cancel(p)}, t("plan_cancel"))));
}

function render() {
  $("planned").tBodies[0].replaceChildren(...planned.map((p) => el("tr", {dataset: {planned: p.id, played: p.session_id ? "yes" : "no"}},
    el("td", {}, longDate(p.date)), el("td", {class: "nowrap"}, p.time.replace(":", " h ")), el("td", {}, p.game_master),
    el("td", {}, t(p.parcours)),
    el("td", {}, people(p), p.groups.length ? el("ul", {class: "groups"}, ...p.groups.map(groupLine)) : null),
    el("td", {class: "num"}, String(p.places_left)), actions(p))));
  $("no-planned").classList.toggle("hidden", planned.length > 0);
  const played = planned.filter((p) => p.session_id).length;
  $("plan-summary").textContent = t(planned.length > 1 ? "plan_summary" : "plan_summary_one", {n: planned.length, played,
    people: planned.reduce((a, p) => a + p.players, 0)});
}
window.render = render;

async function load() {
  const q = new URLSearchParams();
  if ($("from").value) q.set("from", $("from").value);
  if ($("to").value) q.set("to", $("to").value);
  const r = await App.api("GET", `/api/planning?${q}`);
  if (r.ok) planned = r.data.sessions;
  render();
  document.body.dataset.loaded = String(Date.now());
}

async function add(ev) {
  ev.preventDefault();
  const r = await App.post("/api/planning", {date: $("plan-date").value, time: $("plan-time").value,
    game_master: $("plan-gm").value.trim(), parcours: $("plan-parcours").value});
  if (r.ok) { App.toast(t("plan_added", {date: longDate(r.data.date)})); load(); }
}

function openGroup(p) {
  current = p;
  $("group-tenancy").value = p.parcours;
  $("group-for").textContent = `${longDate(p.date)}, ${p.time} — ${t("plan_places_left")} : ${p.places_left}`;
  $("group-dialog").showModal();
}

async function register() {
  const r = await App.post(`/api/planning/${current.id}/groups`, {
    adults: Number($("group-adults").value), children: Number($("group-children").value),
    households: Number($("group-households").value), tenancy: $("group-tenancy").value,
    referral: $("group-referral").value, first_visit: $("group-first").checked});
  if (r.ok) { $("group-dialog").close(); App.toast(t("group_registered")); load(); }
}

async function unregister(g) {
  const p = planned.find((x) => x.groups.includes(g));
  if (p && (await App.api("DELETE", `/api/planning/${p.id}/groups/${g.id}`)).ok) load();
}

async function prepare(p) {
  const r = await App.post(`/api/planning/${p.id}/check`);
  if (r.ok) location.href = "/console";
}

async function cancel(p) {
  if (!confirm(t("plan_cancel_confirm", {date: longDate(p.date)}))) return;
  if ((await App.api("DELETE", `/api/planning/${p.id}`)).ok) load();
}

$("plan-form").onsubmit = add;
$("filters").onsubmit = (ev) => { ev.preventDefault(); load(); };
$("group-form").onsubmit = (ev) => {
  if (ev.submitter && ev.submitter.value === "save") { ev.preventDefault(); register(); }
};
$("emergency").onclick = () => App.emergency("maître du jeu");
App.loadTexts().then(() => {
  const year = new Date().getFullYear();
  $("from").value = `${year}-01-01`;
  $("to").value = `${year}-12-31`;
  App.setupLangSwitch();
  load();
  // the follow-up is the game master's role only (GDPR)
  App.api("GET", "/api/me").then((r) => { if (r.ok) $("nav-followup").classList.toggle("hidden", r.data.role === "tech"); });
});
