// Game master console: timer, orders, rooms and locks, puzzles, clues, budget, audit log.
"use strict";
const {t, el, post, fmt} = App;
const $ = (id) => document.getElementById(id);
let snap = null;
let catalogue = null;
let me = {role: "gm"};
const WHO = () => (me.role === "tech" ? "technicien" : "maître du jeu");

function statusText(s) {
  return {solved: t("solved"), available: t("available"), locked: t("locked_puzzle"), skipped: t("skipped")}[s] || s;
}

function renderGame(g) {
  $("remaining").textContent = fmt(g.remaining_s);
  $("phase").textContent = App.lang === "fr" ? (g.phase_label || g.phase) : g.phase;
  $("parcours").textContent = g.parcours ? t(g.parcours) : "—";
  $("budget").textContent = g.budget ?? "—";
  const running = g.phase === "running", paused = g.phase === "paused";
  $("pause").disabled = !running;
  $("resume").disabled = !paused;
  $("plus5").disabled = $("minus2").disabled = !(running || paused);
  $("stop").disabled = !(running || paused || g.phase === "check" || g.phase === "briefing");
  $("open-start").disabled = running || paused;
  const ol = $("puzzles");
  ol.replaceChildren(...g.puzzles.filter((p) => p.in_parcours).map((p) => el("li",
    {class: p.status, dataset: {puzzle: p.id, status: p.status}},
    el("span", {class: "status"}, statusText(p.status)), " ",
    el("span", {class: "label"}, p.label), " ",
    el("button", {onclick: () => post(`/api/game/puzzles/${p.id}/solve`, {who: WHO()}), disabled: p.status === "solved" ? "" : null}, t("force_solve")),
    el("button", {onclick: () => post(`/api/game/puzzles/${p.id}/reset`, {who: WHO()})}, t("reset")))));
  $("budget-history").replaceChildren(...[...(g.budget_history || [])].reverse().map((b) =>
    el("tr", {}, el("td", {}, fmt(b.at)), el("td", {}, `${b.amount > 0 ? "+" : ""}${b.amount} €`), el("td", {}, b.label || ""))));
  $("audit").replaceChildren(...[...(g.audit || [])].reverse().map((a) =>
    el("tr", {}, el("td", {}, new Date(a.at * 1000).toLocaleTimeString()), el("td", {}, a.who),
       el("td", {}, a.action), el("td", {}, [a.target, a.detail].filter(Boolean).join(" — ")))));
  $("clues-sent").replaceChildren(...(g.clues || []).map((c) =>
    el("li", {dataset: {clue: c.id, status: c.status}}, el("strong", {}, c.status === "shown" ? t("shown") : t("sent")),
       ` · ${c.room || t("all_rooms")} · ${c.text}`)));
}

function renderRooms() {
  $("rooms").replaceChildren(...snap.nodes.map((n) => {
    const props = snap.props.filter((p) => p.node === n.id);
    return el("div", {class: `room ${n.online ? "" : "offline"}`, dataset: {node: n.id}},
      el("h3", {}, n.label, el("span", {class: n.online ? "badge ok" : "badge off"}, n.online ? t("online") : t("node_offline"))),
      ...props.filter((p) => ["maglock", "keypad", "mfrc522", "rdm6300", "sorting", "button", "reed_switch"].includes(p.kind) || p.kind === "relay").map((p) => {
        const row = el("div", {class: "prop", dataset: {prop: `${n.id}.${p.id}`, locked: String(!!(p.reported || {}).locked)}},
          el("span", {class: "name"}, p.label), el("span", {class: "state"}, App.lockText(p)));
        if (p.desired && p.desired.relock_pending) row.append(el("span", {class: "warn"}, t("relock_pending")));
        if (p.kind === "maglock") {
          for (const action of ["lock", "unlock"]) {
            row.append(el("button", {dataset: {action}, onclick: () => post(`/api/props/${n.id}/${p.id}/${action}`)}, t(action)));
          }
        }
        return row;
      }));
  }));
}

window.render = () => { if (!snap) return; renderGame(snap.game); renderRooms(); };

async function loadClues() {
  const res = await fetch("/api/clues", {headers: {"Content-Type": "application/json"}});
  if (res.status === 404) { $("clue-panel").classList.add("hidden"); return; }
  if (!res.ok) return;
  $("clue-panel").classList.remove("hidden");
  catalogue = (await res.json()).catalogue;
  $("clue-catalogue").replaceChildren(...catalogue.filter((p) => p.clues.length).map((p) =>
    el("details", {dataset: {puzzle: p.puzzle}}, el("summary", {}, `${p.label} (${p.room})`),
      ...p.clues.map((c) => el("div", {class: "row"}, el("span", {style: "flex:1"}, `${c.text} (−${c.cost} €)`),
        el("button", {class: "primary", dataset: {clue: `${p.puzzle}:${c.index}`},
          onclick: () => post("/api/clues", {puzzle: p.puzzle, index: c.index, who: WHO()}).then(loadClues)}, t("send_clue")))))));
}

let lastPhase = null;
App.live((data) => {
  snap = data;
  if (snap.game.phase !== lastPhase) { lastPhase = snap.game.phase; loadClues(); }
  const sel = $("clue-room");
  if (!sel.options.length) {
    sel.append(el("option", {value: "all"}, t("all_rooms")), ...snap.nodes.map((n) => el("option", {value: n.id}, n.label)));
  }
  $("nav-rehearsal").classList.toggle("hidden", !snap.demo);
  window.render();
}, App.linkBadge($("link")));

$("emergency").onclick = async () => {
  const r = await post("/api/emergency", {who: WHO()});
  if (r.ok) App.toast(t("emergency_done"));
};
$("open-start").onclick = () => $("start-dialog").showModal();
$("start-form").onsubmit = (ev) => {
  if (ev.submitter && ev.submitter.value !== "start") return;
  post("/api/game/start", {parcours: $("start-parcours").value, players: Number($("start-players").value),
                           children: $("start-children").checked, who: WHO()});
};
$("pause").onclick = () => post("/api/game/pause", {who: WHO()});
$("resume").onclick = () => post("/api/game/resume", {who: WHO()});
$("plus5").onclick = () => post("/api/game/time", {seconds: 300, who: WHO()});
$("minus2").onclick = () => post("/api/game/time", {seconds: -120, who: WHO()});
$("stop").onclick = () => post("/api/game/stop", {who: WHO()});
$("reset-game").onclick = () => post("/api/game/reset", {who: WHO()});
$("send-free-clue").onclick = () => {
  const text = $("free-clue").value.trim();
  if (!text) return;
  post("/api/clues", {text, room: $("clue-room").value, who: WHO()}).then(() => { $("free-clue").value = ""; });
};
// the timer runs between two snapshots (the server pushes one each second while running)
setInterval(() => {
  if (snap && snap.game.phase === "running") { snap.game.remaining_s -= 0.25; $("remaining").textContent = fmt(snap.game.remaining_s); }
}, 250);
App.loadTexts().then(async () => {
  App.setupLangSwitch();
  const r = await App.api("GET", "/api/me");
  if (r.ok) { me = r.data; $("nav-tech").classList.toggle("hidden", me.role !== "tech"); }
  window.render();
});
