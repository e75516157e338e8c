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

const PREPARING = ["check", "briefing"];
const ENDED = ["won", "lost", "aborted"];
const STEP = {check: "check", briefing: "briefing", running: "run", paused: "run", won: "run", lost: "run",
              aborted: "run", debrief: "debrief"};

// Phase flow (check → briefing → run → debrief), inactivity alert, end of the game.
function renderFlow(g) {
  const steps = ["check", "briefing", "run", "debrief"];
  const at = steps.indexOf(STEP[g.phase]);
  for (const li of $("flow").children) {
    const i = steps.indexOf(li.dataset.step);
    if (i === at) li.setAttribute("aria-current", "step"); else li.removeAttribute("aria-current");
    li.classList.toggle("done", at >= 0 && (i < at || (i === at && ENDED.includes(g.phase))));
  }
  const alert = $("alert");
  const level = ["running", "paused"].includes(g.phase) ? g.alert : null;
  alert.classList.toggle("hidden", !level);
  if (level) {
    alert.className = `alert level-${level}`;
    alert.dataset.level = level;
    alert.textContent = t(level === "alert" ? "alert_alert" : "alert_warning", {min: Math.floor((g.idle_s || 0) / 60)});
  }
  const ended = ENDED.includes(g.phase) || g.phase === "debrief";
  $("end-panel").classList.toggle("hidden", !ended);
  $("end-panel").dataset.phase = g.phase;
  if (ended) {
    const result = g.result ? t(`result_${g.result}`) : "";
    $("end-result").textContent = g.phase === "debrief" ? `${t("debrief_phase")} — ${result}` : `${t("game_over")} — ${result}`;
    $("to-debrief").disabled = g.phase === "debrief";
    $("open-debrief").href = g.session ? `/debrief?session=${encodeURIComponent(g.session)}` : "/debrief";
  }
}

// Pre-game check: every prop against its start state, in words and symbol.
function renderCheck(g, check) {
  const show = g.phase === "idle" || PREPARING.includes(g.phase);
  $("check-panel").classList.toggle("hidden", !show || !check);
  if (!show || !check) return;
  // a node that runs another part of the game file counts as not ready (controller/distribution.py)
  const nodes = check.nodes || [];
  const notReady = check.props.filter((p) => p.status !== "ready").length + nodes.length;
  const summary = $("check-summary");
  summary.textContent = notReady ? t("check_not_ready", {n: notReady}) : t("check_ready");
  summary.className = notReady ? "warn" : "";
  summary.dataset.ready = String(!notReady);
  $("to-briefing").disabled = g.phase !== "check";
  $("start-run").disabled = !PREPARING.includes(g.phase) || emergencyOn();
  $("reset-all").disabled = emergencyOn();
  $("override-reason").placeholder = t("override_reason");
  const names = Object.fromEntries((snap.nodes || []).map((n) => [n.id, n.label]));
  // what a human must do first, then what waits, then what is ready (stable within each)
  const rank = (p) => (p.status === "manual_reset" ? 0 : p.status === "ready" ? 2 : 1);
  const props = check.props.map((p, i) => [p, i]).sort(([a, i], [b, j]) => rank(a) - rank(b) || i - j).map(([p]) => p);
  $("check-list").replaceChildren(...props.map((p) => el("li", {dataset: {prop: `${p.node}.${p.prop}`, status: p.status}},
    el("span", {class: "st"}, t(`check_status_${p.status}`)),
    el("span", {class: "name"}, `${names[p.node] || p.node} · ${p.label}`),
    p.instruction ? el("span", {class: "detail", dataset: {fix: p.instruction.key}}, instructionText(p.instruction)) : null)));
  $("check-list").prepend(...nodes.map((n) => el("li", {dataset: {node: n.node, status: `game_${n.status}`}},
    el("span", {class: "st"}, "✖"), el("span", {class: "name"}, n.label || n.node),
    el("span", {class: "detail", dataset: {fix: n.instruction.key}}, instructionText(n.instruction)))));
}

// the server words it in French; other languages from the key and its values
function instructionText(fix) {
  const key = `check_fix_${fix.key}`;
  return App.lang === "fr" || t(key) === key ? fix.text : t(key, fix.vars);
}

// What the relays did not confirm, the broker link, the emergency alert: in the sticky header.
const emergencyOn = () => !!(snap && snap.emergency && snap.emergency.active);
const lockName = App.lockName;
const clock = (ts) => new Date(ts * 1000).toLocaleTimeString(App.lang);

function renderBanners() {
  $("mqtt-banner").classList.toggle("hidden", !(snap.mqtt && snap.mqtt.connected === false));
  const em = snap.emergency;
  $("emergency-banner").classList.toggle("hidden", !emergencyOn());
  if (emergencyOn()) {
    $("emergency-text").textContent = t("emergency_active", {time: em.ts ? clock(em.ts) : "—", who: App.actor(em.who)});
  }
  const alerts = snap.lock_alerts || [];
  $("lock-alerts").classList.toggle("hidden", !alerts.length);
  // "since" as a time of day: right without a push every second
  $("lock-alerts").replaceChildren(...alerts.map((a) => el("li", {dataset: {prop: `${a.node}.${a.prop}`, reason: a.reason}},
    t(a.action === "lock" ? "lock_alert_lock" : "lock_alert_unlock", {
      name: lockName(a), since: clock(snap.ts - (a.pending_s || 0)), why: t(`why_${a.reason}`), n: (a.attempts || 0) + 1}))));
}

// The answer of a lock/unlock order: what the node confirmed, in words.
function toastOrder(action, r) {
  if (!r.ok || !r.data) return;
  const d = r.data;
  if (d.confirmed) App.toast(t(`order_confirmed_${action}`, {name: lockName(d), ms: d.ms}));
  else App.toast(t(`order_pending_${action}`, {name: lockName(d), why: t(`why_${d.reason}`)}), true);
}

function renderGame(g) {
  $("remaining").textContent = fmt(g.remaining_s);
  $("phase").textContent = App.lang === "fr" ? (g.phase_label || g.phase) : g.phase;
  $("parcours").textContent = g.parcours ? t(g.parcours) : "—";
  $("budget").textContent = g.budget ?? "—";
  const running = g.phase === "running", paused = g.phase === "paused";
  const alertOn = emergencyOn();   // nothing that locks while the alert lasts
  $("pause").disabled = !running;
  $("resume").disabled = !paused || alertOn;
  $("plus5").disabled = $("minus2").disabled = !(running || paused);
  $("stop").disabled = !(running || paused || g.phase === "check" || g.phase === "briefing");
  $("open-start").disabled = running || paused || alertOn;
  for (const id of ["resume", "open-start"]) $(id).title = alertOn ? t("blocked_by_emergency") : "";
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
    el("tr", {}, el("td", {}, new Date(a.at * 1000).toLocaleTimeString(App.lang)), el("td", {}, App.actor(a.who)),
       el("td", {}, App.t(`audit_${a.action}`) === `audit_${a.action}` ? a.action : App.t(`audit_${a.action}`)), el("td", {}, [a.target, a.detail].filter(Boolean).join(" — ")))));
  $("clues-sent").replaceChildren(...(g.clues || []).map((c) =>
    el("li", {dataset: {clue: c.id, status: c.status}}, el("strong", {}, c.status === "shown" ? t("shown") : t("sent")),
       ` · ${c.room || t("all_rooms")} · ${c.text}`)));
}

function renderRooms() {
  $("rooms").replaceChildren(...snap.nodes.map((n) => {
    const props = snap.props.filter((p) => p.node === n.id);
    return el("div", {class: `room ${n.online ? "" : "offline"}`, dataset: {node: n.id}},
      el("h3", {}, n.label, el("span", {class: n.online ? "badge ok" : "badge off"},
        n.online ? t("online") : (n.offline_reason === "silent" ? t("node_silent") : t("node_offline"))),
        // the room plays its local puzzles on its own (controller away) / events it still has to deliver
        n.autonomous ? el("span", {class: "badge warn", dataset: {autonomous: "true"}}, t("node_autonomous")) : "",
        n.outbox ? el("span", {class: "badge warn", dataset: {outbox: String(n.outbox)}}, t("node_outbox", {n: n.outbox})) : ""),
      ...props.filter((p) => ["maglock", "keypad", "mfrc522", "rdm6300", "sorting", "button", "reed_switch"].includes(p.kind) || p.kind === "relay").map((p) => {
        const row = el("div", {class: "prop", dataset: {prop: `${n.id}.${p.id}`, locked: String(!!(p.reported || {}).locked)}},
          el("span", {class: "name"}, p.label), el("span", {class: "state"}, App.lockText(p)));
        if (p.desired && p.desired.relock_pending) row.append(el("span", {class: "warn"}, t("relock_pending")));
        if (p.kind === "maglock") {
          // an order the node has not reported yet: pending, never shown as done
          const d = p.desired;
          row.dataset.confirmed = String(!d || !!d.confirmed);
          if (d && !d.confirmed && ["lock", "unlock"].includes(d.action)) {
            row.append(el("span", {class: "pending", dataset: {overdue: String(!!d.overdue)}},
              t(`${d.overdue ? "overdue" : "pending"}_${d.action}`)));
          }
          for (const action of ["lock", "unlock"]) {
            const blocked = action === "lock" && emergencyOn();
            row.append(el("button", {dataset: {action}, disabled: blocked ? "" : null, title: blocked ? t("blocked_by_emergency") : null,
              onclick: () => post(`/api/props/${n.id}/${p.id}/${action}`).then((r) => toastOrder(action, r))}, t(action)));
          }
        }
        return row;
      }));
  }));
}

// The session log cannot be written (a full disk): a banner until it can again.
function renderStore(store) {
  const failing = !!store && !store.ok;
  $("store-banner").classList.toggle("hidden", !failing);
  $("store-banner").dataset.waiting = failing ? String(store.waiting) : "0";
  if (!failing) return;
  const n = new Intl.NumberFormat(App.lang).format(store.waiting);
  $("store-text").textContent = store.waiting === 1 ? t("store_failing_one") : t("store_failing", {n});
  const since = store.since ? new Date(store.since * 1000).toLocaleTimeString(App.lang, {hour: "2-digit", minute: "2-digit"}) : "?";
  $("store-detail").textContent = [t("store_failing_since", {time: since, error: store.error || "?"}),
    store.dropped ? t("store_dropped", {n: new Intl.NumberFormat(App.lang).format(store.dropped)}) : ""].join(" ");
}

// What to fix before the next session (the controller sends none while a game is played).
function renderNotices(notices) {
  const list = notices || [];
  $("notices").classList.toggle("hidden", !list.length);
  $("notices").querySelector("ul").replaceChildren(...list.map((n) =>
    el("li", {dataset: {code: n.code, node: n.node || ""}}, n.label ? `${n.label} : ${App.problemText(n)}` : App.problemText(n))));
}

window.render = () => {
  if (!snap) return;
  renderBanners(); renderStore(snap.store); renderNotices(snap.notices);
  renderGame(snap.game); renderFlow(snap.game); renderCheck(snap.game, snap.check); renderRooms();
};

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
  sel.options[0].textContent = t("all_rooms");   // the texts may load after the first snapshot
  $("nav-rehearsal").classList.toggle("hidden", !snap.demo);
  window.render();
}, App.linkBadge($("link")));

$("emergency").onclick = () => App.emergency(WHO());
$("end-emergency").onclick = async () => {
  const r = await post("/api/emergency/end", {who: WHO()});
  if (r.ok) App.toast(t("emergency_ended"));
};
$("open-start").onclick = () => $("start-dialog").showModal();
const group = () => ({parcours: $("start-parcours").value, players: Number($("start-players").value),
                      children: $("start-children").checked});
$("start-form").onsubmit = (ev) => {
  const action = ev.submitter && ev.submitter.value;
  if (action === "start") post("/api/game/start", {...group(), who: WHO()});
  else if (action === "check") post("/api/game/check", {...group(), who: WHO()});
};
const override = () => ($("override-reason").value.trim() ? {override_reason: $("override-reason").value.trim()} : {});
// in idle it opens the check (every prop sent its start state); in check it resends to every prop not ready
$("reset-all").onclick = () => post("/api/game/check", snap && snap.game.phase === "idle" ? {...group(), who: WHO()} : {who: WHO()});
$("to-briefing").onclick = () => post("/api/game/briefing", {...override(), who: WHO()});
$("start-run").onclick = () => post("/api/game/start", {...override(), who: WHO()});
// the debrief phase; the debrief screen itself opens from the link beside (a TV, a tablet)
$("to-debrief").onclick = () => post("/api/game/debrief", {who: WHO()});
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
