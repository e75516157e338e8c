// The group's profile on a room screen (docs/media.md, « Profils du groupe »): how cues are
// rendered for this group, never the puzzles. Its data: the screen view's `profile` and
// `say` (controller/views.py, Views.profiled): each French text of the view → how to show
// it (the profile's language, the short or children's wording).
//   language      the screen's fixed words in it (i18n/<lang>.json) and the game's texts in
//                 it, the French kept small beneath; Arabic right to left (dir="rtl")
//   low literacy  larger text and pictograms, the newest clue and message only, the
//                 game's messages spoken too (the wording: from `say`)
//   children      a larger timer (the wording: from `say`)
//   hard of hearing  a full-screen flash for the clue chime and every sound cue; every
//                 voice subtitled (a video's subtitles shown)
"use strict";
const Profile = (() => {
  // the languages whose fixed words the screen has (i18n/*.json); others keep French words
  const WORDS = ["fr", "en", "ar", "pt"];
  const FLASH_MS = 1500;
  let said = {}, chosen = null, switching = null;
  let lastCue = null, clues = null;   // what was already there: never flashed again
  const flash = document.createElement("div");
  flash.id = "flash";
  flash.className = "flash";
  flash.setAttribute("aria-hidden", "true");
  document.body.append(flash);
  // when each flash started (wall clock, ms): what the tests check
  window.__flashes = [];

  // A text of the game as the profile wants it: a string when nothing changes, else a span
  // in its language and direction, the French beneath.
  function text(fr, english) {
    const s = said[fr];
    const plain = (App.lang === "en" && english) || fr;
    // on a right-to-left screen a French text keeps its own direction (its full stop last)
    if (!s) return document.documentElement.dir === "rtl" ? App.el("bdi", {}, plain) : plain;
    const main = App.el("span", {class: "said", lang: s.lang, dir: s.dir}, s.text);
    if (!s.fr) return main;
    return App.el("span", {class: "said-both"}, main,
      App.el("small", {class: "said-fr", lang: "fr", dir: "ltr"}, s.fr));
  }

  function doFlash() {
    flash.classList.remove("on");
    void flash.offsetWidth;   // restart the animation
    flash.classList.add("on");
    window.__flashes.push(performance.timeOrigin + performance.now());
    clearTimeout(flash._off);
    flash._off = setTimeout(() => flash.classList.remove("on"), FLASH_MS);
  }

  // a new clue (its chime) or a new sound cue: a flash for a group that hears little
  function watch(g, hoh) {
    const cues = g.cues || [];
    const top = cues.reduce((n, c) => Math.max(n, c.id), 0);
    const fresh = clues !== null && g.clues.some((c) => !clues.has(c.id) && c.status !== "shown");
    const sounded = lastCue !== null && cues.some((c) => c.id > lastCue && c.kind !== "stop");
    clues = new Set(g.clues.map((c) => c.id));
    lastCue = lastCue !== null && top < lastCue ? 0 : top;   // a new game numbers cues from 1
    if (hoh && !g.emergency && (fresh || sounded)) doFlash();
  }

  // a group that reads little hears each new message of the game too (its clues are
  // spoken for every group: media.js), in the wording shown
  let heard = null, voiced = 0;
  function hear(g, on) {
    const texts = g.messages.map((m) => m.text);
    if (heard === null || g.phase === "idle") { heard = new Set(texts); return; }
    for (const text of texts) {
      if (heard.has(text)) continue;
      heard.add(text);
      if (on && !g.emergency) MediaCues.say(`/api/speech/messages?text=${encodeURIComponent(text)}`, `message-${++voiced}`);
    }
  }

  // the fixed words in the group's language (a kiosk's ?lang= otherwise, else French)
  function words(language, render) {
    const wanted = new URLSearchParams(location.search).get("lang");
    const lang = WORDS.includes(language) ? language : (WORDS.includes(wanted) ? wanted : "fr");
    if (lang === App.lang || switching === lang) return;
    switching = lang;
    App.useLang(lang).then(() => { switching = null; render(); });
  }

  function apply(view, render) {
    const p = view.profile || {};
    said = view.say || {};
    const body = document.body.classList;
    body.toggle("p-low-literacy", !!p.low_literacy);
    body.toggle("p-children", !!p.children);
    body.toggle("p-hoh", !!p.hard_of_hearing);
    body.toggle("p-lang", !!p.language);
    document.documentElement.dir = p.dir || "ltr";
    if (chosen !== p.language) { chosen = p.language; words(p.language, render); }
    watch(view.game, !!p.hard_of_hearing);
    hear(view.game, !!p.low_literacy);
    // every voice subtitled: a video's subtitles shown for a group that hears little
    if (p.hard_of_hearing) {
      for (const v of document.querySelectorAll("video")) for (const tr of v.textTracks) tr.mode = "showing";
    }
  }
  return {apply, text, flash: doFlash};
})();
