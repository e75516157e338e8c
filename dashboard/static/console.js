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
  const names = Object.fromEntries((snap.nodes || []).map((n) => [n.id, roomLabel(n)]));
  // what a human must do first, then what waits, then what is ready (stable within each)
  const rank = (p) => (p.status === "manual_reset" ? 0 : p.status === "ready" ? 2 : 1);
  const props = check.props.map((p, i) => [p, i]).sort(([a, i], [b, j]) => rank(a) - rank(b) || i - j).map(([p]) => p);
  // the nodes first (a wrong game file): one list, updated in place as a whole
  const nodeItems = nodes.map((n) => el("li", {dataset: {node: n.node, status: `game_${n.status}`}},
    el("span", {class: "st"}, "✖"), el("span", {class: "name"}, n.label || n.node),
    el("span", {class: "detail", dataset: {fix: n.instruction.key}}, instructionText(n.instruction))));
  const propItems = props.map((p) => el("li", {dataset: {prop: `${p.node}.${p.prop}`, status: p.status}},
    el("span", {class: "st"}, t(`check_status_${p.status}`)),
    el("span", {class: "name"}, `${names[p.node] || p.node} · ${p.label}`),
    p.instruction ? el("span", {class: "detail", dataset: {fix: p.instruction.key}}, instructionText(p.instruction)) : null));
  App.morph($("check-list"), [...nodeItems, ...propItems]);
}

// the server words it in French; other languages from the key and its values
function instructionText(fix) {
  const key = `check_fix_${fix.key}`;
  return App.lang === "fr" || t(key) === key ? fix.text : t(key, fix.vars);
}

// What the relays did not confirm, the broker link, the emergency alert: in the sticky header.
const emergencyOn = () => !!(snap && snap.emergency && snap.emergency.active);
// a room in the page's language, when the game file gives it; a lock with its room
const roomLabel = (n) => (App.lang === "en" && n.label_en) || n.label;
const roomOf = (id) => { const n = snap && snap.nodes.find((x) => x.id === id); return n ? roomLabel(n) : id; };
const lockName = (e) => (e.node ? `${e.label} (${roomOf(e.node)})` : App.lockName(e));
const clock = (ts) => new Date(ts * 1000).toLocaleTimeString(App.lang);

function renderBanners() {
  $("mqtt-banner").classList.toggle("hidden", !(snap.mqtt && snap.mqtt.connected === false));
  const em = snap.emergency;
  $("emergency-banner").classList.toggle("hidden", !emergencyOn());
  if (emergencyOn()) {
    $("emergency-text").textContent = t("emergency_active", {time: em.ts ? clock(em.ts) : "—", who: App.actor(em.who)});
  }
  // after the alert: a banner until the game master says they saw it (the locks are open)
  // (an emergency of this game only: a new session starts without it)
  const started = snap.game.started_wall;
  const after = em && !em.active && !acknowledged(em) && !!started && (em.ts || 0) >= started;
  $("after-emergency").classList.toggle("hidden", !after);
  if (after) {
    $("after-emergency-text").textContent = t(snap.game.phase === "paused" ? "after_emergency_paused" : "after_emergency",
      {time: em.ts ? clock(em.ts) : "—", who: App.actor(em.who)});
    $("after-emergency-resume").classList.toggle("hidden", snap.game.phase !== "paused");
  }
  const alerts = snap.lock_alerts || [];
  $("lock-alerts").classList.toggle("hidden", !alerts.length);
  // "since" as a time of day: right without a push every second
  App.morph($("lock-alerts"), alerts.map((a) => el("li", {dataset: {prop: `${a.node}.${a.prop}`, reason: a.reason}},
    t(a.action === "lock" ? "lock_alert_lock" : "lock_alert_unlock", {
      name: lockName(a), since: clock(snap.ts - (a.pending_s || 0)), why: t(`why_${a.reason}`), n: (a.attempts || 0) + 1}))));
}
const ackKey = (em) => `emergency-seen-${em.id}`;
const acknowledged = (em) => localStorage.getItem(ackKey(em)) === "1";

// The answer of a lock/unlock order: what the node confirmed, in words.
function toastOrder(action, r) {
  if (!r.ok || !r.data) return;
  const d = r.data;
  if (d.confirmed) App.toast(t(`order_confirmed_${action}`, {name: lockName(d), ms: d.ms}));
  else App.toast(t(`order_pending_${action}`, {name: lockName(d), why: t(`why_${d.reason}`)}), true);
}

const puzzleName = (p) => (App.lang === "en" && p.label_en) || p.label;
// « Ventouse du coffre (Hall) », « La boîte aux lettres »: what an id in the journal names
function nameOf(id) {
  if (!snap || !id) return id || "";
  const prop = snap.props.find((p) => `${p.node}.${p.id}` === id);
  if (prop) return `${prop.label} (${roomOf(prop.node)})`;
  const puzzle = snap.game.puzzles.find((p) => p.id === id);
  if (puzzle) return puzzleName(puzzle);
  return roomOf(id);
}
// an audit line's detail in words: ids named, a clue's internal id left out
const auditDetail = (detail) => (detail || "").replace(/^[0-9a-f]{8,}: /, "").split(", ").map(nameOf).join(", ");
const minutes = (s) => Math.max(0, Math.floor((s || 0) / 60));

// What the group tried on an open puzzle, in words: « 0413 », « 🏷 vinaigre blanc », « appui ».
function tryText(x) {
  if (x.type === "code") return `« ${x.value} »`;
  if (x.type === "key") return t("try_key", {key: x.value});
  if (x.tag || (x.value && typeof x.value === "object" && "uid" in x.value)) return `🏷 ${x.tag ? App.tagName(x.tag) : t("unknown_tag")}`;
  return t(`try_${x.type}`) === `try_${x.type}` ? x.type : t(`try_${x.type}`);
}

let hintOpen = null;   // the puzzle whose clues are shown under it (« 💡 Indice »)
function puzzleRow(p, stuck, elapsed) {
  const st = stuck[p.id];
  const playing = ["running", "paused"].includes(snap.game.phase);
  const row = el("li", {class: `${p.status}${st && st.longest ? " longest" : ""}${st && st.hint_due ? " hint-due" : ""}`,
                        dataset: {puzzle: p.id, status: p.status, key: p.id, longest: st && st.longest ? "true" : null}},
    el("span", {class: "status"}, statusText(p.status)), " ",
    el("span", {class: "label"}, puzzleName(p)), " ",
    p.status === "available" && playing && p.clues
      ? el("button", {class: "hint", dataset: {hint: p.id}, "aria-expanded": String(hintOpen === p.id),
                      onclick: () => { hintOpen = hintOpen === p.id ? null : p.id; window.render(); }}, t("hint_button"))
      : null,
    el("button", {dataset: {solve: p.id}, onclick: () => post(`/api/game/puzzles/${p.id}/solve`, {who: WHO()}),
                  disabled: p.status === "solved" || !playing ? "" : null}, t("force_solve")),
    el("button", {dataset: {replay: p.id}, disabled: p.status === "locked" || !playing ? "" : null,
                  onclick: () => replay(p)}, t("reset")));
  if (st) {
    const bits = [t("stuck_since", {min: minutes(elapsed - st.available_at)})];
    if (st.progress_at > st.available_at) bits.push(t("stuck_no_progress", {min: minutes(elapsed - st.progress_at)}));
    if (st.tries.length) bits.push(t("stuck_tries", {tries: st.tries.slice().reverse().map(tryText).join(", ")}));
    if (st.touched) bits.push(t("stuck_touched", {name: nameOf(`${st.touched.node}.${st.touched.prop}`), min: minutes(elapsed - st.touched.at)}));
    row.append(el("div", {class: "stuck"}, bits.join(" · ")));
    if (st.hint_due) row.append(el("div", {class: "suggest", dataset: {suggest: p.id}}, t("hint_suggested", {min: minutes(elapsed - st.progress_at)})));
  }
  if (hintOpen === p.id) row.append(el("div", {class: "hints"}, ...clueRows(p.id)));
  return row;
}

// A pre-written clue and its button: its cost (none when free), « ✔ envoyé » once sent.
function clueRows(puzzle) {
  const entry = (catalogue || []).find((c) => c.puzzle === puzzle);
  if (!entry || !entry.clues.length) return [el("p", {}, t("no_clue"))];
  return entry.clues.map((c) => el("div", {class: "row clue", dataset: {sent: String(c.sent > 0), key: `${puzzle}:${c.index}`}},
    el("span", {class: "text"}, App.lang === "en" && c.text_en ? c.text_en : c.text),
    c.cost ? el("span", {class: "cost"}, App.money(-c.cost, true)) : null,
    c.sent ? el("span", {class: "sent"}, c.sent > 1 ? t("clue_sent_n", {n: c.sent}) : t("clue_sent")) : null,
    el("button", {class: c.sent ? null : "primary", dataset: {clue: `${puzzle}:${c.index}`},
      onclick: () => post("/api/clues", {puzzle, index: c.index, who: WHO()}).then(loadClues)}, t("send_clue"))));
}

// « Rejouer »: the players do it again — its locks close again and its budget is undone
async function replay(p) {
  const choice = await App.ask(t("confirm_replay", {name: puzzleName(p)}), [["replay", t("replay_yes"), true]]);
  if (choice === "replay") post(`/api/game/puzzles/${p.id}/reset`, {who: WHO()});
}

function renderGame(g) {
  $("remaining").textContent = fmt(g.remaining_s);
  $("header-remaining").textContent = `⏱ ${fmt(g.remaining_s)}`;
  $("phase").textContent = App.lang === "fr" ? (g.phase_label || g.phase) : t(`phase_${g.phase}`);
  $("parcours").textContent = g.parcours ? t(g.parcours) : "—";
  $("budget").textContent = App.money(g.budget ?? g.budget_start);
  renderProfile(g);
  const running = g.phase === "running", paused = g.phase === "paused";
  const alertOn = emergencyOn();   // nothing that locks while the alert lasts
  $("pause").disabled = !running;
  $("resume").disabled = !paused || alertOn;
  $("plus5").disabled = $("minus2").disabled = !(running || paused);
  $("stop").disabled = !(running || paused || g.phase === "check" || g.phase === "briefing");
  $("open-start").disabled = running || paused || alertOn || PREPARING.includes(g.phase);
  // a new session only once the game is over (the server refuses it before)
  const canReset = ENDED.includes(g.phase) || ["debrief", "idle"].includes(g.phase);
  $("reset-game").disabled = !canReset;
  $("reset-game").title = canReset ? "" : t("reset_game_blocked");
  for (const id of ["resume", "open-start"]) $(id).title = alertOn ? t("blocked_by_emergency") : "";
  const stuck = Object.fromEntries((snap.stuck || []).map((s) => [s.puzzle, s]));
  App.morph($("puzzles"), g.puzzles.filter((p) => p.in_parcours).map((p) => puzzleRow(p, stuck, g.elapsed_s)));
  App.morph($("budget-history"), [...(g.budget_history || [])].reverse().map((b) =>
    el("tr", {}, el("td", {}, fmt(b.at)), el("td", {}, App.money(b.amount, true)), el("td", {}, b.label || ""))));
  App.morph($("audit"), [...(g.audit || [])].reverse().map((a) =>
    el("tr", {}, el("td", {}, new Date(a.at * 1000).toLocaleTimeString(App.lang, {hour: "2-digit", minute: "2-digit", second: "2-digit"})),
       el("td", {}, App.actor(a.who)),
       el("td", {}, App.t(`audit_${a.action}`) === `audit_${a.action}` ? a.action : App.t(`audit_${a.action}`)),
       el("td", {}, [nameOf(a.target), auditDetail(a.detail)].filter(Boolean).join(" — ")))));
  App.morph($("clues-sent"), (g.clues || []).map((c) =>
    el("li", {dataset: {clue: c.id, status: c.status}}, el("strong", {}, c.status === "shown" ? t("shown") : t("sent")),
       ` · ${c.room ? nameOf(c.room) : t("all_rooms")} · ${c.text}`)));
}

function renderRooms() {
  App.morph($("rooms"), snap.nodes.map((n) => {
    const props = snap.props.filter((p) => p.node === n.id);
    return el("div", {class: `room ${n.online ? "" : "offline"}`, dataset: {node: n.id, key: n.id}},
      el("h3", {}, roomLabel(n), el("span", {class: n.online ? "badge ok" : "badge off"},
        n.online ? t("online") : (n.offline_reason === "silent" ? t("node_silent") : t("node_offline"))),
        // the room plays its local puzzles on its own (controller away) / events it still has to deliver
        n.autonomous ? el("span", {class: "badge warn", dataset: {autonomous: "true"}}, t("node_autonomous")) : "",
        n.outbox ? el("span", {class: "badge warn", dataset: {outbox: String(n.outbox)}}, t("node_outbox", {n: n.outbox})) : ""),
      ...props.filter((p) => ["maglock", "keypad", "mfrc522", "rdm6300", "sorting", "button", "reed_switch"].includes(p.kind) || p.kind === "relay").map((p) => {
        const row = el("div", {class: "prop", dataset: {prop: `${n.id}.${p.id}`, key: `${n.id}.${p.id}`, locked: String(!!(p.reported || {}).locked)}},
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
  for (const o of $("clue-room").options) if (o.value !== "all") o.textContent = roomOf(o.value);
  renderBanners(); renderStore(snap.store); renderNotices(snap.notices);
  renderGame(snap.game); renderFlow(snap.game); renderCheck(snap.game, snap.check); renderRooms(); renderCatalogue();
  renderToday(snap.game);
};

async function loadClues() {
  const res = await fetch("/api/clues", {headers: {"Content-Type": "application/json"}});
  if (res.status === 404) { $("clue-panel").classList.add("hidden"); catalogue = null; window.render(); return; }
  if (!res.ok) return;
  $("clue-panel").classList.remove("hidden");
  catalogue = (await res.json()).catalogue;
  window.render();
}
function renderCatalogue() {
  if (!catalogue) return;
  App.morph($("clue-catalogue"), catalogue.filter((p) => p.clues.length).map((p) =>
    el("details", {dataset: {puzzle: p.puzzle, key: p.puzzle}},
      el("summary", {}, `${nameOf(p.puzzle)} (${nameOf(p.room)})`, p.clues.some((c) => c.sent) ? el("span", {class: "sent"}, ` · ${t("clue_sent")}`) : null),
      ...clueRows(p.puzzle))));
}

// The live link: lost, the whole page says so, its controls are out of reach and the timer
// stops (what it would show is a guess); back, the next view redraws everything.
const badge = App.linkBadge($("link"));
function onLink(up) {
  badge(up);
  $("link-banner").classList.toggle("hidden", up);
  document.body.dataset.link = up ? "up" : "down";
  document.querySelector("main").inert = !up;
}

let lastPhase = null, lastClues = null;
App.live((data) => {
  snap = data;
  if (snap.game.phase !== lastPhase || snap.game.clue_count !== lastClues) {
    if (snap.game.phase !== lastPhase) loadToday();
    lastPhase = snap.game.phase; lastClues = snap.game.clue_count; loadClues();
  }
  const sel = $("clue-room");
  if (!sel.options.length) {
    // data-i18n: translated again whenever the texts (re)load, whatever came first
    sel.append(el("option", {value: "all", "data-i18n": "all_rooms"}, t("all_rooms")), ...snap.nodes.map((n) => el("option", {value: n.id}, roomLabel(n))));
  }
  $("nav-rehearsal").classList.toggle("hidden", !snap.demo);
  window.render();
}, onLink);

// « Reprendre » after an emergency: the locks it opened are listed, and relocked unless the
// game master chooses otherwise; an exit door only when ticked.
async function resume() {
  const plan = (snap && snap.relock) || [];
  if (!plan.length) { post("/api/game/resume", {who: WHO()}); return; }
  const doors = plan.filter((l) => l.exit_door);
  const extra = [
    el("p", {}, t("relock_intro")),
    el("ul", {class: "relock-list"}, ...plan.filter((l) => !l.exit_door).map((l) => el("li", {dataset: {relock: `${l.node}.${l.prop}`}}, `🔒 ${lockName(l)}`))),
    ...doors.map((l) => el("label", {class: "check"}, el("input", {type: "checkbox", dataset: {exitDoor: `${l.node}.${l.prop}`}}),
                           ` ${t("relock_exit_door", {name: lockName(l)})}`))];
  const choice = await App.ask(t("resume_after_emergency"), [["relock", t("resume_relock"), true], ["plain", t("resume_plain")]], extra);
  if (!choice) return;
  const ticked = [...document.querySelectorAll("#ask-extra input[data-exit-door]:checked")].map((i) => i.dataset.exitDoor);
  const r = await post("/api/game/resume", choice === "relock" ? {relock: true, exit_doors: ticked, who: WHO()} : {who: WHO()});
  if (r.ok && snap.emergency) localStorage.setItem(ackKey(snap.emergency), "1");
}
$("after-emergency-resume").onclick = resume;
$("after-emergency-ack").onclick = () => { if (snap && snap.emergency) localStorage.setItem(ackKey(snap.emergency), "1"); window.render(); };

$("emergency").onclick = () => App.emergency(WHO());
$("end-emergency").onclick = async () => {
  const r = await post("/api/emergency/end", {who: WHO()});
  if (r.ok) App.toast(t("emergency_ended"));
};
$("open-start").onclick = () => openStart(null);
const group = () => ({parcours: $("start-parcours").value, players: Number($("start-players").value),
                      children: $("start-children").checked, profile: profileOf("start")});
$("start-form").onsubmit = async (ev) => {
  const action = ev.submitter && ev.submitter.value;
  if (action !== "start" && action !== "check") return;
  // a planned session: the same choices, and the game played is linked to the plan
  const url = plannedFor ? `/api/planning/${plannedFor.id}/${action}` : `/api/game/${action}`;
  const r = await post(url, {...group(), who: WHO()});
  if (plannedFor && r.ok) loadToday();
};
const override = () => ($("override-reason").value.trim() ? {override_reason: $("override-reason").value.trim()} : {});
// in idle it opens the check (every prop sent its start state); in check it resends to every prop not ready
$("reset-all").onclick = () => post("/api/game/check", snap && snap.game.phase === "idle" ? {...group(), who: WHO()} : {who: WHO()});
$("to-briefing").onclick = () => post("/api/game/briefing", {...override(), who: WHO()});
$("start-run").onclick = () => post("/api/game/start", {...override(), who: WHO()});
// the debrief phase; the debrief screen itself opens from the link beside (a TV, a tablet)
$("to-debrief").onclick = () => post("/api/game/debrief", {who: WHO()});
$("pause").onclick = () => post("/api/game/pause", {who: WHO()});
$("resume").onclick = resume;
$("plus5").onclick = () => post("/api/game/time", {seconds: 300, who: WHO()});
$("minus2").onclick = () => post("/api/game/time", {seconds: -120, who: WHO()});
// a game under way is ended only on a second, explicit tap (it cannot be taken back)
$("stop").onclick = async () => {
  if (["running", "paused"].includes(snap && snap.game.phase)) {
    if (await App.ask(t("confirm_stop"), [["stop", t("stop_yes"), false]]) !== "stop") return;
  }
  post("/api/game/stop", {who: WHO()});
};
$("reset-game").onclick = () => post("/api/game/reset", {who: WHO()});
$("send-free-clue").onclick = () => {
  const text = $("free-clue").value.trim();
  if (!text) return;
  post("/api/clues", {text, room: $("clue-room").value, who: WHO()}).then(() => { $("free-clue").value = ""; });
};
// the timer runs between two views (the server sends the time with each change), and stops
// while the link is lost
setInterval(() => {
  if (snap && snap.game.phase === "running" && App.linkUp) { snap.game.remaining_s -= 0.25;
    $("remaining").textContent = fmt(snap.game.remaining_s);
    $("header-remaining").textContent = `⏱ ${fmt(snap.game.remaining_s)}`;
  }
}, 250);
App.loadTexts().then(async () => {
  App.setupLangSwitch();
  const r = await App.api("GET", "/api/me");
  if (r.ok) { me = r.data; $("nav-tech").classList.toggle("hidden", me.role !== "tech"); $("nav-followup").classList.toggle("hidden", me.role === "tech"); }
  window.render();
});

// -- the day's planned sessions (GET /api/planning?today=true, the controller's date) --------
// While no game runs, the home shows them; « Préparer la partie » opens the start dialog
// filled in from the plan (parcours, everyone who plays, children included, its groups).
let today = null, plannedFor = null;
async function loadToday() {
  const r = await App.api("GET", "/api/planning?today=true");
  if (!r.ok) return;
  today = r.data;
  const top = today.max_players || 6;
  $("start-players").max = String(top);
  $("start-limit").textContent = t("start_limit", {n: top});
  window.render();
  document.body.dataset.today = String(Date.now());
}
const hourText = (hhmm) => hhmm.replace(":", " h ");
function peopleText(x) {
  const parts = [t(x.adults > 1 ? "n_adults" : "n_adult", {n: x.adults})];
  if (x.children) parts.push(t(x.children > 1 ? "n_children" : "n_child", {n: x.children}));
  return parts.join(", ");
}
const groupText = (g) => `${peopleText(g)} · ${t(`tenancy_${g.tenancy}`)} · ${t(`referral_${g.referral}`)}`;
function renderToday(g) {
  const idle = g.phase === "idle" || ENDED.includes(g.phase) || g.phase === "debrief";
  const shown = idle && !!today && today.sessions.length > 0;
  $("today-panel").classList.toggle("hidden", !shown);
  if (!shown) return;
  App.morph($("today-list").tBodies[0], today.sessions.map((p) => el("tr", {dataset: {planned: p.id, key: String(p.id), played: p.session_id ? "yes" : "no"}},
    el("td", {class: "nowrap"}, hourText(p.time)),
    el("td", {}, el("strong", {}, t(p.parcours)), el("br"), p.game_master),
    el("td", {}, p.players ? `${t(p.players > 1 ? "n_players" : "n_player", {n: p.players})} (${peopleText(p)})` : t("today_no_group"),
      p.groups.length ? el("ul", {class: "groups"}, ...p.groups.map((x) => el("li", {dataset: {group: x.id}}, groupText(x)))) : null),
    el("td", {}, p.session_id
      ? el("a", {class: "button", href: `/debrief?session=${encodeURIComponent(p.session_id)}`}, t("today_played"))
      : el("button", {class: "primary prepare", dataset: {prepare: p.id}, disabled: p.players === 0 || emergencyOn() ? "" : null,
                      onclick: () => openStart(p)}, t("plan_prepare"))))));
}
function openStart(p) {
  plannedFor = p;
  fillProfile("start", null);   // the profile's fields, the children's box among them
  $("start-plan").classList.toggle("hidden", !p);
  if (p) {
    $("start-parcours").value = p.parcours;
    $("start-players").value = String(p.players);
    $("start-children").checked = p.children > 0;
    $("start-plan-title").textContent = t("start_from_plan", {time: hourText(p.time), gm: p.game_master});
    $("start-groups").replaceChildren(...p.groups.map((x) => el("li", {dataset: {group: x.id}}, groupText(x))));
  }
  $("start-dialog").showModal();
}
// The game file's introduction video (intro:) on its screen, with its subtitles: offered
// during the check and the briefing; the stop silences that screen (its music comes back).
let introRooms = null;   // where the last one was started; null: unknown, every screen
const renderWithoutIntro = window.render;
window.render = () => {
  renderWithoutIntro();
  if (snap) $("intro-row").classList.toggle("hidden", !PREPARING.includes(snap.game.phase));
};
$("intro-play").onclick = async () => {
  const r = await post("/api/media/intro", {who: WHO()});
  if (r.ok) { introRooms = r.data.rooms; App.toast(t("intro_started")); }
};
$("intro-stop").onclick = () => post("/api/media/stop", {room: introRooms});

// « Sons et vidéos »: play a file of the library in a room or everywhere, stop, each room's
// volume and the global mute (kept by the controller: controller/mixer.py), and « Ce qui
// joue où » as each room's screen reported it (snap.media) — « rien », or « écran hors
// ligne » when it stopped reporting; never what was merely sent.
let mediaFiles = null;
async function loadMediaFiles() {
  const r = await App.api("GET", "/api/media");
  if (!r.ok || !r.data) return;
  mediaFiles = r.data.files;
  renderMedia();
}
const mediaKind = (kind) => t(`media_kind_${kind}`);
const seconds = (s) => `${Math.floor(s / 60)}:${String(Math.round(s % 60)).padStart(2, "0")}`;
function mediaItem(p) {
  const bits = [p.file || t("media_clue_voice"), mediaKind(p.kind),
    t("media_since", {time: new Date(p.since * 1000).toLocaleTimeString(App.lang)})];
  if (p.paused) bits.push(t("media_paused"));
  if (p.muted) bits.push(t("media_item_muted"));
  return el("li", {dataset: {file: p.file, kind: p.kind, paused: String(p.paused), muted: String(p.muted)}},
    `${p.paused ? "⏸" : "▶"} ${bits.join(" · ")}`);
}
function mediaRoom(r) {
  const pct = Math.round(r.volume * 100);
  const state = r.screen !== "online" ? "offline" : r.playing.length ? "playing" : "nothing";
  return el("li", {class: `media-room ${state}`, dataset: {room: r.room, key: r.room, screen: r.screen, state}},
    el("strong", {class: "name"}, roomOf(r.room)),
    state === "playing" ? el("ul", {class: "playing"}, ...r.playing.map(mediaItem))
      : el("span", {class: "nothing"}, t(state === "offline" ? "media_screen_offline" : "media_nothing")),
    el("label", {class: "volume"}, el("span", {class: "pct", dataset: {pct: String(pct)}}, t("media_volume", {pct})),
      el("input", {type: "range", min: "0", max: "100", step: "5", value: String(pct), dataset: {volume: r.room},
                   "aria-label": t("media_volume_of", {room: roomOf(r.room)})})),
    el("button", {dataset: {mediaStop: r.room}, onclick: () => post("/api/media/stop", {room: r.room})}, t("media_stop")));
}
function renderMedia() {
  const media = snap && snap.media;
  if (!media) return;
  // in place (App.morph): an open list keeps its choice while the view changes
  if (mediaFiles) {
    App.morph($("media-file"), mediaFiles.map((f) => el("option", {value: f.name, dataset: {key: f.name}},
      `${f.name} (${mediaKind(f.kind === "video" ? "video" : "cue")}, ${seconds(f.duration_s)})`)));
  }
  App.morph($("media-room"), [el("option", {value: "", dataset: {key: "all"}}, t("all_rooms")),
    ...media.rooms.map((r) => el("option", {value: r.room, dataset: {key: r.room}}, roomOf(r.room)))]);
  $("media-muted").classList.toggle("hidden", !media.muted);
  $("media-mute").textContent = t(media.muted ? "media_unmute" : "media_mute");
  $("media-mute").dataset.muted = String(media.muted);
  App.morph($("media-rooms"), media.rooms.map(mediaRoom));
  // a slider under the game master's finger keeps what they are choosing
  for (const input of $("media-rooms").querySelectorAll("input[data-volume]")) {
    const r = media.rooms.find((x) => x.room === input.dataset.volume);
    if (r && document.activeElement !== input) input.value = String(Math.round(r.volume * 100));
  }
}
$("media-rooms").addEventListener("input", (ev) => {
  const input = ev.target.closest("input[data-volume]");
  if (input) input.previousElementSibling.textContent = t("media_volume", {pct: input.value});
});
// sent once the slider rests (a key held down, a finger dragging: one order, one audit line)
const VOLUME_SETTLE_MS = 400;
$("media-rooms").addEventListener("change", (ev) => {
  const input = ev.target.closest("input[data-volume]");
  if (!input) return;
  clearTimeout(input._settle);
  input._settle = setTimeout(() => post("/api/media/volume", {room: input.dataset.volume,
                                                               volume: Number(input.value) / 100}), VOLUME_SETTLE_MS);
});
$("media-play").onclick = () => {
  const file = $("media-file").value;
  if (!file) return;
  post("/api/media/play", {file, room: $("media-room").value || null, loop: $("media-loop").checked});
};
$("media-stop-all").onclick = () => post("/api/media/stop", {room: null});
$("media-mute").onclick = () => post("/api/media/mute", {muted: !(snap && snap.media && snap.media.muted)});
const renderBeforeMedia = window.render;
window.render = () => { renderBeforeMedia(); renderMedia(); };
$("media-file").addEventListener("focus", loadMediaFiles);   // a file the technician just uploaded
loadMediaFiles();
// « Profil du groupe » (docs/media.md): how the room screens render cues for this group —
// children, reads little French, the explanations in another language too, hard of
// hearing. Chosen in the start dialog, shown beside the phase, changed at any time.
let languages = null;   // [{code, name}]: the languages the game file is translated into
async function loadLanguages() {
  if (languages) return languages;
  const r = await App.api("GET", "/api/game/profile");
  if (r.ok) languages = r.data.languages;
  return languages || [];
}
function profileFields(prefix) {
  const box = (id, key) => el("label", {}, el("input", {id: `${prefix}-${id}`, type: "checkbox", class: "tick"}),
    " ", el("span", {}, t(key)));
  return [el("legend", {}, t("profile_title")), box("children", "profile_children"),
    box("low-literacy", "profile_low_literacy"),
    el("label", {}, el("span", {}, t("profile_language")), " ",
      el("select", {id: `${prefix}-language`}, el("option", {value: ""}, t("profile_language_none")))),
    box("hoh", "profile_hoh")];
}
async function fillProfile(prefix, profile) {
  const set = $(`${prefix === "start" ? "start-profile" : "profile-fields"}`);
  set.replaceChildren(...profileFields(prefix));
  const p = profile || {};
  $(`${prefix}-children`).checked = !!p.children;
  $(`${prefix}-low-literacy`).checked = !!p.low_literacy;
  $(`${prefix}-hoh`).checked = !!p.hard_of_hearing;
  const select = $(`${prefix}-language`);
  for (const l of await loadLanguages()) select.append(el("option", {value: l.code}, languageName(l)));
  select.value = p.language || "";
}
const languageName = (l) => (App.lang === "fr" ? l.name : t(`lang_${l.code}`));
function profileOf(prefix) {
  if (!$(`${prefix}-low-literacy`)) return undefined;   // the fields are not there yet
  return {children: $(`${prefix}-children`).checked, low_literacy: $(`${prefix}-low-literacy`).checked,
          language: $(`${prefix}-language`).value || null, hard_of_hearing: $(`${prefix}-hoh`).checked};
}
function renderProfile(g) {
  const p = g.profile;
  $("profile-line").classList.toggle("hidden", !p || !g.session);
  if (!p) return;
  const said = [p.children && t("profile_children"), p.low_literacy && t("profile_low_literacy"),
    p.language && languageName((languages || []).find((l) => l.code === p.language) || {code: p.language, name: p.language}),
    p.hard_of_hearing && t("profile_hoh")].filter(Boolean);
  $("profile").textContent = said.join(" · ") || t("profile_none");
}
$("edit-profile").onclick = async () => {
  await fillProfile("profile", snap && snap.game.profile);
  $("profile-dialog").showModal();
};
$("profile-form").onsubmit = async (ev) => {
  if (!ev.submitter || ev.submitter.value !== "save") return;
  const r = await post("/api/game/profile", {...profileOf("profile"), who: WHO()});
  if (r.ok) App.toast(t("profile_saved"));
};
fillProfile("start", null);   // the fields group() reads exist from the start
