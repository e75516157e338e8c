// Sound and video on a room screen (docs/media.md): the cues of the game file (do: sound,
// do: video) that the screen view carries, each played once; a looping sound is the room's
// music, as is the music the view names for the moment of the game (music: of the game
// file; it changes with the phase and in the last minutes). Each new clue is spoken (speech made on the controller), and while a voice speaks
// the music drops to DUCK of its volume and comes back after.
// A video plays over the screen (below the evacuation notice); during the emergency alert
// nothing plays: people must hear the staff.
// A kiosk runs Chromium with --autoplay-policy=no-user-gesture-required; a screen opened by
// hand plays once it has been touched (screen.js).
"use strict";
const MediaCues = (() => {
  const DUCK = 0.2;            // the music's share of its volume while a voice speaks
  const RAMP_MS = 250;         // a volume change is a short ramp, not a jump
  const VOICE_AFTER_MS = 400;  // the chime (screen.js) first, then the voice
  const box = document.createElement("div");
  box.id = "cues";
  box.hidden = true;
  const stage = document.createElement("div");   // where a video is seen
  stage.id = "cue-video";
  stage.className = "cue-video hidden";
  document.body.append(box, stage);
  let last = null;             // the highest cue id handled; null before the first view
  let music = null, voices = 0;
  let moment = null;           // the view's music now playing ("moment|file|volume"), or null
  let sound = {volume: 1, muted: false};   // the room's volume and the mute, from the console
  const spoken = new Set();
  // the files this room may play, loaded in advance and kept in memory (url → blob: URL):
  // a cue plays even when the controller cannot be reached at that moment
  const loaded = new Map();
  window.__preloaded = [];
  // when each cue started playing (wall clock, ms): what the tests and docs/media.md measure
  window.__cuesPlayed = [];

  const withToken = (url) => (App.token
    ? `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(App.token)}` : url);

  function fade(media, to) {
    clearInterval(media._fade);
    const from = media.volume, start = performance.now();
    media._fade = setInterval(() => {
      const k = Math.min(1, (performance.now() - start) / RAMP_MS);
      media.volume = Math.max(0, Math.min(1, from + (to - from) * k));
      if (k >= 1) clearInterval(media._fade);
    }, 20);
  }
  const musicLevel = () => (music ? Number(music.dataset.base) * (voices > 0 ? DUCK : 1) * sound.volume : 0);
  function duck(on) {
    voices = Math.max(0, voices + (on ? 1 : -1));
    if (music) fade(music, musicLevel());
  }

  function preload(files) {
    for (const f of files || []) {
      if (loaded.has(f.url)) continue;
      loaded.set(f.url, null);
      fetch(withToken(f.url), {credentials: "same-origin"})
        .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(String(r.status)))))
        .then((blob) => { loaded.set(f.url, URL.createObjectURL(blob)); window.__preloaded.push(f.file); })
        .catch(() => loaded.delete(f.url));   // tried again on the next view
    }
  }

  function element(kind, url, id, volume, loop) {
    const m = document.createElement(kind === "video" ? "video" : "audio");
    Object.assign(m, {src: loaded.get(url) || withToken(url), preload: "auto", loop,
                      volume: volume * sound.volume, muted: sound.muted});
    m.dataset.cue = id;
    m.dataset.base = volume;
    m.addEventListener("playing", () => window.__cuesPlayed.push(
      {id, wall: performance.timeOrigin + performance.now()}), {once: true});
    return m;
  }

  function setMusic(m) {
    if (music) { music.pause(); music.remove(); }
    music = m;
    if (m) { m.volume = musicLevel(); box.append(m); m.play().catch(() => {}); }
  }

  // the view's music for the moment: started when it changes, kept playing otherwise
  function follow(wanted) {
    const key = wanted ? `${wanted.moment}|${wanted.file}|${wanted.volume}` : null;
    if (key === moment) return;
    const mine = music && music.dataset.cue.startsWith("music-");
    moment = key;
    if (wanted) {
      const m = element("sound", wanted.url, `music-${wanted.moment}`, wanted.volume, true);
      m.dataset.file = wanted.file;
      setMusic(m);
    }
    else if (mine) setMusic(null);
  }

  function play(cue) {
    if (!cue.url) return;   // no longer in the library: nothing to play
    const m = element(cue.kind, cue.url, String(cue.id), cue.volume, cue.loop);
    m.dataset.file = cue.file;
    if (cue.loop && cue.kind === "sound") { setMusic(m); return; }
    m.addEventListener("ended", () => { m.remove(); stage.classList.toggle("hidden", !stage.children.length); });
    if (cue.kind === "video") { stage.replaceChildren(m); stage.classList.remove("hidden"); } else box.append(m);
    m.play().catch(() => {});   // not allowed yet (no touch on a screen opened by hand)
  }

  function speak(clue) {
    const v = element("sound", `/api/speech/clues/${encodeURIComponent(clue.id)}`, `clue-${clue.id}`, 1, false);
    let done = false;
    const end = () => { if (!done) { done = true; duck(false); v.remove(); } };
    v.addEventListener("ended", end);
    v.addEventListener("error", end);   // no speech on this controller: the clue is shown anyway
    duck(true);
    box.append(v);
    setTimeout(() => v.play().catch(end), VOICE_AFTER_MS);
  }

  function silence() {
    for (const m of [...box.children, ...stage.children]) { m.pause(); m.remove(); }
    stage.classList.add("hidden");
    music = null;
    moment = null;   // the moment's music starts again once the view allows it
    voices = 0;
  }

  function update(g) {
    mix(g.sound);
    preload(g.preload);
    const cues = g.cues || [];
    const top = cues.reduce((n, c) => Math.max(n, c.id), 0);
    if (last === null) {   // the first view: what was cued before is over
      last = top;
      for (const c of g.clues) spoken.add(c.id);
      if (!g.emergency) follow(g.music);
      return;
    }
    if (top < last) last = 0;   // a new game numbers its cues from 1 again
    if (g.emergency) {   // what was cued meanwhile is not played afterwards either
      silence();
      last = top;
      for (const c of g.clues) spoken.add(c.id);
      return;
    }
    for (const c of cues) if (c.id > last) { last = c.id; if (c.kind === "stop") silence(); else play(c); }
    for (const c of g.clues) {
      if (spoken.has(c.id)) continue;
      spoken.add(c.id);
      if (c.status !== "shown") speak(c);
    }
    if (g.phase === "idle") silence();
    else follow(g.music);
  }
  // The room's volume and the mute (controller/mixer.py), applied at once to what plays:
  // every element's volume is its own times the room's; muted, every element is silent
  // (it goes on, so the music is where it should be when the sound comes back).
  function mix(wanted) {
    const next = {volume: wanted ? wanted.volume : 1, muted: !!(wanted && wanted.muted)};
    if (next.volume === sound.volume && next.muted === sound.muted) return;
    sound = next;
    report();
    for (const m of [...box.children, ...stage.children]) {
      m.muted = sound.muted;
      if (m === music) fade(m, musicLevel());
      else m.volume = Number(m.dataset.base) * sound.volume;
    }
  }

  // What this page plays, said to the controller (the console's « Ce qui joue où ») when
  // it changes and every REPORT_MS; a closing page says it is gone. Never a toast: players
  // would read it.
  const REPORT_MS = 5000;      // controller/mixer.py REPORT_EVERY_S
  const page = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
  const room = decodeURIComponent(location.pathname.split("/")[2] || "");
  let due = null;
  const kindOf = (m) => (m === music ? "music" : m.tagName === "VIDEO" ? "video"
    : m.dataset.cue.startsWith("clue-") ? "voice" : "cue");
  function playing() {
    return [...box.children, ...stage.children].filter((m) => m.dataset.cue).slice(-16).map((m) => ({
      key: m.dataset.cue, file: m.dataset.file || "", kind: kindOf(m), paused: m.paused || m.ended,
      muted: m.muted, volume: Math.round(m.volume * 100) / 100,
      played_s: m._since ? Math.max(0, (performance.now() - m._since) / 1000) : 0}));
  }
  function send(gone) {
    if (!room) return;
    fetch(withToken("/api/media/playing"), {
      method: "POST", credentials: "same-origin", keepalive: true, headers: {"Content-Type": "application/json"},
      body: JSON.stringify({room, screen: page, items: gone ? [] : playing(), gone})}).catch(() => {});
  }
  function report() {   // soon, once for what changes together
    if (due === null) due = setTimeout(() => { due = null; send(false); }, 150);
  }
  for (const what of ["playing", "pause", "ended", "emptied"]) {
    document.addEventListener(what, (ev) => {
      if (what === "playing" && !ev.target._since) ev.target._since = performance.now();
      report();
    }, true);
  }
  new MutationObserver(report).observe(box, {childList: true});
  new MutationObserver(report).observe(stage, {childList: true});
  setInterval(() => send(false), REPORT_MS);
  window.addEventListener("pagehide", () => send(true));
  report();

  return {update, get music() { return music; },
          get muted() { return sound.muted; }, get volume() { return sound.volume; }};
})();
