// Sound and video on a room screen (docs/media.md): the cues of the game file (do: sound,
// do: video) that the screen view carries, each played once; a looping sound is the room's
// music, as is the music the view names for the moment of the game (music: of the game
// file; it changes with the phase and in the last minutes). Each new clue is spoken (speech
// made on the controller) once its chime has ended; voices wait their turn, one at a time,
// in order; from the first chime to the end of the last voice the music drops to DUCK of
// its volume and comes back after; a video ducks it too. Every voice and
// video is subtitled on one line (#subtitle): a video's WebVTT tracks, a clue's own text.
// A video plays over the screen (below the evacuation notice); during the emergency alert
// nothing plays: people must hear the staff.
// A kiosk runs Chromium with --autoplay-policy=no-user-gesture-required; a screen opened by
// hand plays once it has been touched (screen.js).
"use strict";
const MediaCues = (() => {
  const DUCK = 0.2;            // the music's share of its volume while a voice speaks
  const RAMP_MS = 250;         // a volume change is a short ramp, not a jump
  const BEEP_MS = 300;         // the screen's own beep (screen.js), when the game has no chime
  const CHIME_WAIT_MS = 3000;  // a chime that never starts or stalls: the voice waits no longer
  const VOICE_WAIT_MS = 10000; // a voice not started this long after its turn came is given up
  const box = document.createElement("div");
  box.id = "cues";
  box.hidden = true;
  const stage = document.createElement("div");   // where a video is seen
  stage.id = "cue-video";
  stage.className = "cue-video hidden";
  // one subtitle line for every voice and video: big, at the bottom, over everything but
  // the evacuation notice (a video's WebVTT cue, or the clue being spoken)
  const line = document.createElement("div");
  line.id = "subtitle";
  line.className = "subtitle hidden";
  line.setAttribute("aria-live", "polite");
  document.body.append(box, stage, line);
  let last = null;             // the highest cue id handled; null before the first view
  let music = null, voices = 0;
  let moment = null;           // the view's music now playing ("moment|file|volume"), or null
  let sound = {volume: 1, muted: false};   // the room's volume and the mute, from the console
  let chimeOver = Promise.resolve();       // settles once the last clue chime is over
  let turn = Promise.resolve();   // settles once the last voice queued is over (or given up)
  let era = 0;                    // a silence starts a new one: the voices queued before are dropped
  const spoken = new Set();
  // the files this room may play, loaded in advance and kept in memory (url → blob: URL):
  // a cue plays even when the controller cannot be reached at that moment
  const loaded = new Map();
  const loading = new Map();   // url → the promise of its preload
  window.__preloaded = [];
  // when each cue started playing (wall clock, ms): what the tests and docs/media.md measure
  window.__cuesPlayed = [];
  // a cue older than this (game time) when it reaches the screen is not played: a screen
  // back on the network does not play what happened while it was away
  const STALE_S = 5;

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
      loading.set(f.url, fetch(withToken(f.url), {credentials: "same-origin"})
        .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(String(r.status)))))
        .then((blob) => { loaded.set(f.url, URL.createObjectURL(blob)); window.__preloaded.push(f.file); })
        .catch(() => loaded.delete(f.url))   // tried again on the next view
        .finally(() => loading.delete(f.url)));
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
    if (m) { m.volume = musicLevel(); box.append(m); m.play().catch(refused); }
  }

  // the view's music for the moment: started when it changes, kept playing otherwise
  function follow(wanted) {
    const key = wanted ? `${wanted.moment}|${wanted.file}|${wanted.volume}` : null;
    if (key === moment) return;
    const mine = music && music.dataset.cue.startsWith("music-");
    moment = key;
    // the music waits for its preload: played from the network, a loop would need the
    // network again (a screen cut from it would fall silent)
    const start = () => {
      if (moment !== key) return;
      const m = element("sound", wanted.url, `music-${wanted.moment}`, wanted.volume, true);
      m.dataset.file = wanted.file;
      setMusic(m);
    };
    if (wanted && loading.has(wanted.url)) loading.get(wanted.url).then(start);
    else if (wanted) start();
    else if (mine) setMusic(null);
  }

  function subtitle(text) {
    line.textContent = text || "";
    line.classList.toggle("hidden", !text);
  }

  // a video's subtitles: each WebVTT file a <track>, the screen's language shown (French
  // otherwise, the first); its cues are drawn on the subtitle line, large enough for a TV
  function tracks(video, subtitles) {
    const list = subtitles || [];
    const wanted = list.find((s) => s.lang === App.lang) || list[0];
    const names = new Intl.DisplayNames([App.lang || "fr"], {type: "language"});
    for (const s of list) {
      const tr = Object.assign(document.createElement("track"), {kind: "subtitles", srclang: s.lang,
        label: names.of(s.lang) || s.lang, src: loaded.get(s.url) || withToken(s.url), default: s === wanted});
      video.append(tr);
    }
    video.textTracks.addEventListener("change", () => {
      for (const tt of video.textTracks) if (tt.mode === "showing") tt.mode = "hidden";   // drawn by us
    });
    for (const tt of video.textTracks) {
      tt.addEventListener("cuechange", () => {
        if (tt.mode === "disabled") return;
        subtitle([...(tt.activeCues || [])].map((c) => c.text).join("\n"));
      });
      if (tt.mode === "showing") tt.mode = "hidden";
    }
  }

  function play(cue) {
    if (!cue.url) return;   // no longer in the library: nothing to play
    const m = element(cue.kind, cue.url, String(cue.id), cue.volume, cue.loop);
    m.dataset.file = cue.file;
    if (cue.loop && cue.kind === "sound") { setMusic(m); return; }
    let over = false, finished;
    const gone = new Promise((ok) => { finished = ok; });
    const end = () => {
      m.remove();
      stage.classList.toggle("hidden", !stage.children.length);
      if (cue.kind === "video" && !over) { over = true; duck(false); subtitle(""); }
      finished();
    };
    m.addEventListener("ended", end);
    m.addEventListener("error", end);
    if (cue.event === "clue_chime") {
      const stopped = new Promise((ok) => m.addEventListener("pause", ok, {once: true}));   // silence()
      chimeOver = bounded(m, Promise.race([gone, stopped]));
    }
    if (cue.kind === "video") {
      tracks(m, cue.subtitles);
      for (const old of stage.children) old.dispatchEvent(new Event("ended"));   // replaced: its duck ends
      stage.replaceChildren(m);
      stage.classList.remove("hidden");
      duck(true);   // the story is heard over the music
    } else box.append(m);
    m.play().catch((err) => {   // not allowed yet (no touch on a screen opened by hand): of its moment
      refused(err);
      end();
    });
  }

  // *gone* (a sound ended, failed, was refused), or a sound that never starts or stalls
  // given up: *wait* after it was cued, or CHIME_WAIT_MS after the length it has left once playing
  function bounded(m, gone, wait = CHIME_WAIT_MS) {
    return new Promise((done) => {
      let timer = setTimeout(done, wait);
      m.addEventListener("playing", () => {
        if (!Number.isFinite(m.duration)) return;
        clearTimeout(timer);
        timer = setTimeout(done, (m.duration - m.currentTime) * 1000 + CHIME_WAIT_MS);
      }, {once: true});
      gone.then(() => { clearTimeout(timer); done(); });
    });
  }

  // a clue's sentences shown one after the other while its voice says them, each for its
  // share of the voice's length
  function followVoice(v, text) {
    const parts = text.split(/(?<=[.!?…])\s+/).filter(Boolean);
    const total = parts.reduce((n, p) => n + p.length, 0) || 1;
    v.addEventListener("timeupdate", () => {
      const at = v.duration ? (v.currentTime / v.duration) * total : 0;
      let sum = 0;
      subtitle(parts.find((p) => (sum += p.length) > at) || parts[parts.length - 1]);
    });
    v.addEventListener("playing", () => subtitle(parts[0]), {once: true});
  }

  // a clue's voice starts once its chime is over (the game's chime, a cue of this view;
  // otherwise the screen's beep): heard one after the other, each clearly
  function speak(clue, chime) {
    // a recorded voice when the clue's data has one, otherwise speech made on the controller
    const url = clue.voice_url || `/api/speech/clues/${encodeURIComponent(clue.id)}`;
    const after = chime ? chimeOver : new Promise((ok) => setTimeout(ok, BEEP_MS));
    say(url, `clue-${clue.id}`, clue.text, after);   // its subtitle: the French text
  }

  // a voice: the music ducks under it from now (a clue's chime) to its end (a clue's, a
  // message read to a group that reads little), its *text* the subtitle line while it
  // plays; it starts once *after* settles and the voices queued before it are over (two
  // clues sent within seconds are heard one after the other, never over each other),
  // unless stopped meanwhile (silence()). A voice that fails is skipped; one that does not
  // start VOICE_WAIT_MS after its turn, or stalls, is dropped: the next never waits for ever.
  function say(url, id, text = "", after = Promise.resolve()) {
    const v = element("sound", url, id, 1, false);   // loading from now, heard at its turn
    const mine = era;
    let done = false, over;
    const gone = new Promise((ok) => { over = ok; });
    const end = () => {
      if (done) return;
      done = true;
      v.remove();
      if (era === mine) { duck(false); subtitle(""); }   // after a silence, nothing of it is left
      over();
    };
    v.addEventListener("ended", end);
    v.addEventListener("error", end);   // no speech on this controller: the clue is shown anyway
    if (text) followVoice(v, text);   // what the voice says: French
    duck(true);
    box.append(v);
    turn = Promise.all([turn, after]).then(() => {
      if (done || era !== mine || !v.isConnected) { end(); return undefined; }
      v.play().catch((err) => { refused(err); end(); });
      return bounded(v, gone, VOICE_WAIT_MS).then(end);
    });
  }

  function silence() {
    era += 1;                       // the queued voices are dropped, the next one starts at once
    turn = Promise.resolve();
    for (const m of [...box.children, ...stage.children]) { m.pause(); m.remove(); }
    subtitle("");
    stage.classList.add("hidden");
    music = null;
    moment = null;   // the moment's music starts again once the view allows it
    voices = 0;
  }

  function update(g) {
    if (blocked) setBlocked(true);   // its words, once the texts are in
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
    for (const c of cues) {
      if (c.id <= last) continue;
      last = c.id;
      if (c.kind === "stop") silence();
      else if (!(g.elapsed_s - c.at > STALE_S)) play(c);
    }
    for (const c of g.clues) {
      if (spoken.has(c.id)) continue;
      spoken.add(c.id);
      if (c.status !== "shown") speak(c, g.clue_chime);
    }
    if (g.phase === "idle") silence();
    else follow(g.music);
  }
  // « Activer le son »: a screen opened by hand in a browser that wants a touch before any
  // sound shows it, only while sound is refused; the kiosk (autoplay allowed) never does.
  // A short silent sound is tried at load and on each touch: refused → the prompt. Sound
  // allowed another way (a key pressed, the browser's own rules) shows when an element of
  // the page plays with its sound on: the prompt goes then too.
  // (in the page only while shown: a screen that plays has nothing to press)
  const prompt = document.createElement("button");
  prompt.id = "sound-prompt";
  prompt.type = "button";
  prompt.className = "sound-prompt";
  let blocked = false;
  window.__soundBlocked = null;   // null: not known yet (what the tests wait for)
  function setBlocked(on) {
    blocked = on;
    window.__soundBlocked = on;
    prompt.textContent = `🔊 ${App.t("screen_sound_on")}`;
    if (on && !prompt.isConnected) document.body.append(prompt);
    else if (!on) prompt.remove();
  }
  function refused(err) { if (err && err.name === "NotAllowedError") setBlocked(true); }
  function silentWav() {
    const n = 2205, buf = new ArrayBuffer(44 + 2 * n), v = new DataView(buf);   // 0.1 s, 22 050 Hz
    const text = (at, s) => [...s].forEach((c, i) => v.setUint8(at + i, c.charCodeAt(0)));
    text(0, "RIFF"); v.setUint32(4, 36 + 2 * n, true); text(8, "WAVEfmt ");
    v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
    v.setUint32(24, 22050, true); v.setUint32(28, 44100, true); v.setUint16(32, 2, true);
    v.setUint16(34, 16, true); text(36, "data"); v.setUint32(40, 2 * n, true);
    return URL.createObjectURL(new Blob([buf], {type: "audio/wav"}));
  }
  const probeUrl = silentWav();
  function probe() {
    const a = new Audio(probeUrl);
    return a.play().then(() => { a.pause(); setBlocked(false); }, (err) => {
      if (err && err.name === "NotAllowedError") setBlocked(true);
    });
  }
  // a touch allows sound: what was refused plays now. On "click", not "pointerdown": a
  // browser grants a finger's touch only when it lifts (pointerup), a mouse on press; a
  // click comes after both (and after Enter on the button)
  function allowed() {
    setBlocked(false);
    if (music && music.paused) music.play().catch(refused);   // the refused effects were of their moment
  }
  document.addEventListener("click", () => {
    if (!blocked) return;
    probe().then(() => { if (!blocked) allowed(); });
  });
  // a muted element may play while sound is refused: only one heard says it is allowed
  document.addEventListener("playing", (ev) => { if (blocked && !ev.target.muted) allowed(); }, true);
  probe();

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

  return {update, say, BEEP_MS, get music() { return music; }, get blocked() { return blocked; },
          get muted() { return sound.muted; }, get volume() { return sound.volume; }};
})();
