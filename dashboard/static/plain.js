// Plain live page of the walking skeleton: nodes, puzzles and locks over one WebSocket.
"use strict";
let snap = null;
const $ = (id) => document.getElementById(id);

async function post(url, body) {
  const res = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                body: JSON.stringify(body || {})});
  if (!res.ok) alert((await res.json()).detail || res.statusText);
}

function fmt(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

function describe(p) {
  const r = p.reported || {};
  if (p.kind === "maglock") {
    const lock = r.locked ? "🔒 verrouillé" : (r.engaged ? "⚠ alimenté, porte ouverte" : "🔓 ouvert");
    const door = r.door === "open" ? "porte ouverte" : r.door === "closed" ? "porte fermée" : "porte ?";
    return `${lock} · ${door}`;
  }
  if ("on" in r) return r.on ? "allumé" : "éteint";
  if ("pressed" in r) return r.pressed ? "appuyé" : "relâché";
  return Object.entries(r).map(([k, v]) => `${k}: ${v}`).join(", ");
}

function render() {
  if (!snap) return;
  const g = snap.game;
  $("title").textContent = snap.apartment.name;
  $("phase").textContent = g.phase;
  $("parcours").textContent = g.parcours;
  $("remaining").textContent = fmt(g.remaining_s);
  $("budget").textContent = g.budget;
  $("puzzles").innerHTML = "";
  for (const p of g.puzzles.filter((p) => p.in_parcours)) {
    const li = document.createElement("li");
    li.className = p.status;
    li.dataset.puzzle = p.id;
    li.textContent = `${p.label} — ${p.status === "solved" ? "résolue" : p.status === "available" ? "disponible" : "verrouillée"}`;
    $("puzzles").append(li);
  }
  const rooms = $("rooms");
  rooms.innerHTML = "";
  for (const n of snap.nodes) {
    const div = document.createElement("div");
    div.className = "room";
    div.dataset.node = n.id;
    div.innerHTML = `<h3>${n.label} <span class="badge ${n.online ? "" : "off"}">${n.online ? "en ligne" : "hors ligne"}</span></h3>`;
    for (const p of snap.props.filter((p) => p.node === n.id)) {
      const row = document.createElement("div");
      row.className = "prop";
      row.dataset.prop = `${n.id}.${p.id}`;
      row.innerHTML = `<span class="name">${p.label}</span><span class="state">${describe(p)}</span>`;
      if (p.kind === "maglock") {
        for (const [action, text] of [["lock", "Verrouiller"], ["unlock", "Ouvrir"]]) {
          const b = document.createElement("button");
          b.textContent = text;
          b.dataset.action = action;
          b.onclick = () => post(`/api/props/${n.id}/${p.id}/${action}`);
          row.append(b);
        }
        if (snap.demo) {
          for (const [gesture, text] of [["open_door", "ouvrir la porte"], ["close_door", "fermer la porte"]]) {
            const b = document.createElement("button");
            b.textContent = `🖐 ${text}`;
            b.onclick = () => post(`/api/sim/${n.id}/${p.id}`, {gesture});
            row.append(b);
          }
        }
      }
      if (snap.demo && p.kind === "keypad") {
        const keys = document.createElement("span");
        keys.className = "keys";
        for (const k of "123456789*0#") {
          const b = document.createElement("button");
          b.textContent = k;
          b.dataset.key = k;
          b.onclick = () => post(`/api/sim/${n.id}/${p.id}`, {gesture: "press", value: k});
          keys.append(b);
        }
        row.append(keys);
      }
      if (snap.demo && ["button", "reed_switch", "pressure_mat"].includes(p.kind)) {
        for (const [gesture, text] of [["press", "appuyer"], ["hold", "maintenir"]]) {
          const b = document.createElement("button");
          b.textContent = `🖐 ${text}`;
          b.onclick = () => post(`/api/sim/${n.id}/${p.id}`, {gesture});
          row.append(b);
        }
      }
      div.append(row);
    }
    rooms.append(div);
  }
}

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.onopen = () => { $("link").textContent = "en direct"; $("link").className = "badge"; };
  ws.onclose = () => {
    $("link").textContent = "hors ligne"; $("link").className = "badge off";
    setTimeout(connect, 1000);
  };
  ws.onmessage = (msg) => { const f = JSON.parse(msg.data); if (f.type === "snapshot") { snap = f.data; render(); } };
}

$("emergency").onclick = () => post("/api/emergency");
$("start").onclick = () => post("/api/game/start", {parcours: $("start-parcours").value,
                                                   players: Number($("start-players").value)});
$("stop").onclick = () => post("/api/game/stop");
setInterval(() => { if (snap && snap.game.phase === "running") { snap.game.remaining_s -= 1; $("remaining").textContent = fmt(snap.game.remaining_s); } }, 1000);
connect();
