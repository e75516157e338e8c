// The console, in the debrief phase: the debrief's step shown on the room screens, and
// ◀ / ▶ to move it (the debrief page has the whole page and the group's answers).
// GET and PUT /api/debrief/{session} (controller/debrief_steps.py).
"use strict";
(() => {
  const box = document.getElementById("steps-nav");
  let shown = null, asked = 0;
  // pushes come every few seconds (heartbeats): ask again at most this often, so a page
  // changed on the debrief page shows here too
  const AGAIN_MS = 3000;

  function draw() {
    const label = document.getElementById("console-step");
    if (!shown) return;
    const p = shown.pages[shown.page];
    box.dataset.page = shown.page;
    label.textContent = `${App.t("step_n", {n: shown.step})} — ${p.kind === "theme" ? `${p.icon} ${(App.lang === "en" && p.title_en) || p.title}` : App.t(`step_title_${p.kind}`)}`;
    document.getElementById("console-step-prev").disabled = shown.page === 0;
    document.getElementById("console-step-next").disabled = shown.page === shown.pages.length - 1;
  }
  async function load(session) {
    asked = Date.now();
    const r = await App.api("GET", `/api/debrief/${encodeURIComponent(session)}`);
    if (r.ok && r.data.session === session) { shown = r.data; draw(); }
  }
  async function go(delta) {
    if (!shown) return;
    const r = await App.api("PUT", `/api/debrief/${encodeURIComponent(shown.session)}/page`, {page: shown.page + delta});
    if (r.ok) { shown = r.data; draw(); }
  }
  document.getElementById("console-step-prev").onclick = () => go(-1);
  document.getElementById("console-step-next").onclick = () => go(1);

  const base = window.render;
  window.render = () => {
    base();
    const g = snap && snap.game;
    const on = Boolean(g && g.phase === "debrief" && g.session);
    box.classList.toggle("hidden", !on);
    if (!on) { shown = null; return; }
    if (!shown || shown.session !== g.session || Date.now() - asked > AGAIN_MS) load(g.session);
    else draw();
  };
})();
