// Shared by every page: i18n, API calls, the live WebSocket (auto-reconnect), formatting.
"use strict";
const App = (() => {
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  let texts = {};
  let lang = localStorage.getItem("lang") || "fr";

  async function loadTexts() {
    const res = await fetch(`/static/i18n/${lang}.json`);
    texts = {...fallback, ...(await res.json())};
    document.documentElement.lang = lang;
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
    for (const badge of badges) badge.draw();
  }
  function t(key, vars) {
    let s = texts[key] ?? key;
    for (const [k, v] of Object.entries(vars || {})) s = s.replace(`{${k}}`, v);
    return s;
  }
  function setLang(l) { lang = l; localStorage.setItem("lang", l); return loadTexts(); }
  // A room screen in its group's language (docs/media.md, « Profils du groupe »): not
  // remembered by the browser; a word not translated yet stays French.
  let fallback = {};
  async function useLang(l) {
    fallback = l === "fr" ? {} : await fetch("/static/i18n/fr.json").then((r) => r.json()).catch(() => ({}));
    lang = l;
    return loadTexts();
  }

  function withToken(url) {
    return token ? `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : url;
  }
  // An order the controller does not answer within this is reported as failed (a frozen
  // server or a dead link must not leave a button doing nothing).
  const API_TIMEOUT_MS = 10000;
  async function api(method, url, body) {
    const opts = {method, headers: {"Content-Type": "application/json"}, credentials: "same-origin",
                  signal: AbortSignal.timeout(API_TIMEOUT_MS)};
    if (method !== "GET") opts.body = JSON.stringify(body || {});
    let res;
    try {
      res = await fetch(withToken(url), opts);
    } catch (_e) {
      // no answer at all: say so in words, never « Failed to fetch »
      if (method !== "GET") toast(t("action_failed_offline"), true);
      return {ok: false, status: 0, data: null};
    }
    if (res.status === 401 && !token) { location.href = `/login?next=${encodeURIComponent(location.pathname)}`; }
    let data = null;
    try { data = await res.json(); } catch (_e) { data = null; }
    if (!res.ok) toast(errorText(data) || t("action_failed_status", {status: res.status}), true);
    return {ok: res.ok, status: res.status, data};
  }
  const post = (url, body) => api("POST", url, body);
  // every API error is {detail: French, detail_en: English, …} (controller/api/errors.py)
  function errorText(data) {
    if (!data) return "";
    const text = lang === "en" && data.detail_en ? data.detail_en : data.detail;
    return typeof text === "string" ? text : JSON.stringify(text);
  }

  function toast(text, bad) {
    let box = document.getElementById("toast");
    if (!box) { box = document.createElement("div"); box.id = "toast"; box.setAttribute("role", "alert"); document.body.append(box); }
    box.textContent = (bad ? "⚠ " : "✔ ") + text;
    box.className = bad ? "bad show" : "show";
    clearTimeout(box._timer);
    box._timer = setTimeout(() => { box.className = ""; }, 4000);
  }

  // RFC 6902 JSON Patch, the operations the controller sends (controller/delta.py):
  // add, remove, replace; an array index or "-" (the end).
  function applyPatch(doc, ops) {
    for (const op of ops) {
      if (op.path === "") { doc = op.value; continue; }
      const parts = op.path.slice(1).split("/").map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
      const last = parts.pop();
      let parent = doc;
      for (const p of parts) parent = parent[Array.isArray(parent) ? Number(p) : p];
      if (Array.isArray(parent)) {
        const i = last === "-" ? parent.length : Number(last);
        if (op.op === "add") parent.splice(i, 0, op.value);
        else if (op.op === "remove") parent.splice(i, 1);
        else parent[i] = op.value;
      } else if (op.op === "remove") delete parent[last];
      else parent[last] = op.value;
    }
    return doc;
  }

  // The live feed: the whole view on connect, then what changed (numbered patches; a gap
  // asks for the whole view again). A watchdog pings every PING_MS: a link silent for
  // SILENT_MS is dead even if the socket looks open (a frozen server, a pulled cable), and
  // the page says so at once instead of showing stale data as live.
  const PING_MS = 1000, SILENT_MS = 4000;
  let linkUp = false;
  function live(onSnapshot, onLink) {
    let delay = 500;
    let ws = null, state = null, version = 0, heard = 0;
    const report = (up) => { if (up !== linkUp) { linkUp = up; onLink(up); } };
    function drop(sock) {
      sock.onopen = sock.onclose = sock.onmessage = null;
      try { sock.close(); } catch (_e) { /* already closing */ }
    }
    function connect() {
      const sock = new WebSocket(withToken(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`));
      ws = sock;
      heard = performance.now();
      sock.onopen = () => { delay = 500; heard = performance.now(); };
      sock.onclose = () => { report(false); retry(sock); };
      sock.onmessage = (msg) => {
        const t0 = performance.now();
        heard = t0;
        const frame = JSON.parse(msg.data);
        if (frame.type === "snapshot") {
          state = frame.data; version = frame.v;
        } else if (frame.type === "patch") {
          if (state === null || frame.v !== version + 1) { sock.send("resync"); return; }
          state = applyPatch(state, frame.ops); version = frame.v;
        } else return;   // pong: the link is alive
        report(true);
        onSnapshot(structuredClone(state));   // a page may change its copy; the patches apply to ours
        window.__lastRender = {received: t0, rendered: performance.now(), ts: state.ts, v: version};
      };
    }
    function retry(sock) {
      if (sock !== ws) return;
      drop(sock);
      ws = null;
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 8000);
    }
    setInterval(() => {
      if (!ws) return;
      if (performance.now() - heard > SILENT_MS) { report(false); retry(ws); return; }
      if (ws.readyState === 1) ws.send("ping");
    }, PING_MS);
    connect();
  }
  // a badge drawn before the texts are loaded is drawn again once they are (see loadTexts)
  const badges = [];
  function linkBadge(el) {
    const badge = {up: null, draw() {
      if (badge.up === null) return;
      el.textContent = badge.up ? `● ${t("live")}` : `○ ${t("offline")}`;
      el.className = badge.up ? "badge ok" : "badge off";
    }};
    badges.push(badge);
    return (up) => { badge.up = up; badge.draw(); };
  }

  // who gave an order, as the audit log records it (English identifiers) → the page's language
  const ACTORS = [
    [/^game master$/, "actor_gm"], [/^technician$/, "actor_tech"], [/^controller$/, "actor_controller"],
    [/^node (\S+) \(offline\)$/, "actor_node_offline"], [/^node (\S+) \(emergency input\)$/, "actor_node_emergency"],
    [/^puzzle (\S+)$/, "actor_puzzle"], [/^screen (\S+)$/, "actor_screen"],
  ];
  function actor(who) {
    for (const [re, key] of ACTORS) {
      const m = re.exec(who || "");
      if (m) return t(key, {id: m[1] || ""});
    }
    return who || "";
  }
  function fmt(seconds) {
    const s = Math.max(0, Math.round(seconds || 0));
    return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
  }
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "onclick") e.onclick = v;
      else if (k === "dataset") Object.assign(e.dataset, v);
      else if (k === "class") e.className = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }
  // Update *parent*'s children in place to look like *kids* (built fresh by a render):
  // a node of the same tag is kept and only its text, attributes and handler change, so a
  // button under a finger is never replaced (a held press would be lost) and nothing moves.
  function morph(parent, kids) {
    kids = kids.filter((k) => k !== null && k !== undefined && k !== "")
      .map((k) => (typeof k === "string" ? document.createTextNode(k) : k));
    kids.forEach((fresh, i) => {
      const old = parent.childNodes[i];
      if (!old) { parent.append(fresh); return; }
      if (old.nodeName !== fresh.nodeName || (old.dataset && old.dataset.key !== fresh.dataset.key)) {
        parent.replaceChild(fresh, old); return;
      }
      if (old.nodeType === Node.TEXT_NODE) { if (old.data !== fresh.data) old.data = fresh.data; return; }
      for (const {name} of [...old.attributes]) {
        if (!fresh.hasAttribute(name) && name !== "open") old.removeAttribute(name);   // « open »: the user's
      }
      for (const {name, value} of fresh.attributes) if (old.getAttribute(name) !== value) old.setAttribute(name, value);
      old.onclick = fresh.onclick;
      morph(old, [...fresh.childNodes]);
    });
    while (parent.childNodes.length > kids.length) parent.lastChild.remove();
  }

  // A question before a drastic order: resolves to the value of the button pressed ("" when
  // cancelled). *choices*: [[value, label, primary?]…]; *extra*: nodes shown under the text.
  function ask(text, choices, extra) {
    let dialog = document.getElementById("ask-dialog");
    if (!dialog) {
      dialog = el("dialog", {id: "ask-dialog"}, el("form", {method: "dialog"},
        el("p", {id: "ask-text"}), el("div", {id: "ask-extra"}), el("div", {id: "ask-choices", class: "row"})));
      document.body.append(dialog);
    }
    document.getElementById("ask-text").textContent = text;
    document.getElementById("ask-extra").replaceChildren(...(extra || []));
    document.getElementById("ask-choices").replaceChildren(
      ...choices.map(([value, label, primary]) => el("button", {value, class: primary ? "primary" : null, dataset: {ask: value}}, label)),
      el("button", {value: "", dataset: {ask: "cancel"}}, t("cancel")));
    dialog.returnValue = "";
    dialog.showModal();
    return new Promise((resolve) => { dialog.onclose = () => resolve(dialog.returnValue); });
  }

  // a tag's name in the game file (« vinaigre_blanc ») as words: « vinaigre blanc »
  const tagName = (name) => String(name || "").replace(/_/g, " ");

  // « 1 450 € », « −620 € »: money as the page's language writes it
  function money(n, signed) {
    if (n === null || n === undefined) return "—";
    const f = new Intl.NumberFormat(lang, {style: "currency", currency: "EUR", maximumFractionDigits: 0,
                                           signDisplay: signed ? "exceptZero" : "auto"});
    return f.format(n);
  }

  function lockText(p) {
    const r = p.reported || {};
    if (p.kind !== "maglock") {
      if ("on" in r) return r.on ? `💡 ${t("on")}` : `${t("off")}`;
      if ("pressed" in r) return r.pressed ? t("pressed") : t("released");
      if ("buffer_length" in r) return `⌨ ${t("keys_typed", {n: r.buffer_length})}`;
      if ("occupied" in r) return r.occupied ? `⬤ ${t("mat_occupied")}` : `○ ${t("mat_free")}`;
      if ("closed" in r) return r.closed ? `▮ ${t("contact_closed")}` : `◻ ${t("contact_open")}`;
      if ("bins" in r) {
        return Object.entries(r.bins || {}).map(([bin, uid]) =>
          `${bin} : ${uid ? ((r.names || {})[bin] || uid) : t("bin_empty")}`).join(" · ");
      }
      if ("tag" in r || p.kind === "mfrc522" || p.kind === "rdm6300") {
        const tag = r.tag ? `🏷 ${r.tag_name || r.tag}` : t("no_tag");
        return r.connected === false || r.version === null ? `${tag} · ⚠ ${t("reader_not_answering")}` : tag;
      }
      return Object.entries(r).filter(([k]) => !["v", "ack"].includes(k)).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
    }
    const lock = r.locked ? `🔒 ${t("locked")}` : (r.engaged ? `⚠ ${t("engaged_open")}` : `🔓 ${t("unlocked")}`);
    const door = r.door === "open" ? `🚪 ${t("door_open")}` : r.door === "closed" ? `▮ ${t("door_closed")}` : "";
    return door ? `${lock} · ${door}` : lock;
  }
  // « Ventouse de l'armoire (Chambre) »: a lock as the game master reads it, never its id
  const lockName = (e) => `${e.label} (${e.room})`;
  // The emergency button of every staff page: the toast says what the relays confirmed, no more.
  async function emergency(who) {
    const r = await post("/api/emergency", {who});
    if (!r.ok || !r.data) return r;
    const d = r.data;
    if (d.all_confirmed) {
      toast(t("emergency_confirmed", {n: d.confirmed.length, ms: Math.max(0, ...d.confirmed.map((e) => e.ms))}));
    } else if (!d.confirmed.length) {
      toast(t("emergency_none", {why: d.mqtt ? "" : ` (${t("why_broker")})`}), true);
    } else {
      toast(t("emergency_some", {n: d.confirmed.length, total: d.confirmed.length + d.unconfirmed.length,
                                 names: d.unconfirmed.map(lockName).join(", ")}), true);
    }
    return r;
  }
  // A node's health problem or a console notice (controller/health.py, controller/backup.py)
  // in words: what is wrong, and what to do about it.
  function problemText(p) {
    const num = (n, digits = 0) => Number(n).toLocaleString(lang, {maximumFractionDigits: digits});
    const gb = (b) => num(b / 1024 ** 3, 1);
    const disk = p.code === "disk_low" || p.code === "disk_warn";
    return t(p.kind === "backup" ? p.code : `health_${p.code}`, {
      value: p.value === null || p.value === undefined ? "?" : disk ? gb(p.value) : num(p.value),
      limit: p.limit === null || p.limit === undefined ? "?" : disk ? gb(p.limit) : num(p.limit),
      prop: p.prop || "", detail: p.detail || ""});
  }
  function setupLangSwitch() {
    const b = document.getElementById("lang");
    if (b) b.onclick = () => setLang(lang === "fr" ? "en" : "fr").then(() => { if (window.render) window.render(); });
  }
  return {t, actor, loadTexts, morph, ask, money, tagName, setLang, useLang, api, post, errorText, live, applyPatch, linkBadge, fmt, el, lockText, lockName,
          emergency, problemText, toast, token, setupLangSwitch,
          get lang() { return lang; }, get linkUp() { return linkUp; }};
})();
