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
  const musicLevel = () => (music ? Number(music.dataset.base) * (voices > 0 ? DUCK : 1) : 0);
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
    Object.assign(m, {src: loaded.get(url) || withToken(url), preload: "auto", loop, volume});
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
    if (wanted) setMusic(element("sound", wanted.url, `music-${wanted.moment}`, wanted.volume, true));
    else if (mine) setMusic(null);
  }

  function play(cue) {
    if (!cue.url) return;   // no longer in the library: nothing to play
    const m = element(cue.kind, cue.url, String(cue.id), cue.volume, cue.loop);
    if (cue.loop && cue.kind === "sound") { setMusic(m); return; }
    m.addEventListener("ended", () => { m.remove(); stage.classList.toggle("hidden", !stage.children.length); });
    if (cue.kind === "video") { stage.replaceChildren(m); stage.classList.remove("hidden"); } else box.append(m);
    m.play().catch(() => {});   // not allowed yet (no touch on a screen opened by hand)
  }

  function speak(clue) {
    say(`/api/speech/clues/${encodeURIComponent(clue.id)}`, `clue-${clue.id}`);
  }

  // a voice: the music ducks under it (a clue's, a message read to a group that reads little)
  function say(url, id) {
    const v = element("sound", url, id, 1, false);
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
  return {update, say, get music() { return music; }};
})();
