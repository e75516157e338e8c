// The debrief that teaches, one page at a time: drawn the same on the game master's
// debrief page (with the counters to record the group's answers) and on the room TV (big,
// nothing to press). Its data: GET /api/debrief/{session} (controller/debrief_steps.py),
// and on a screen the `debrief` of its live view.
"use strict";
const DebriefSteps = (() => {
  const {t, el, fmt} = App;
  const en = () => App.lang === "en";
  const words = (fr, english) => (en() && english) || fr;
  const num = (n) => Math.abs(n).toLocaleString(en() ? "en-GB" : "fr-FR");
  const money = (n) => (n === null || n === undefined ? "—" : `${n < 0 ? "−" : ""}${num(n)} €`);
  const signed = (n) => `${n > 0 ? "+" : n < 0 ? "−" : ""}${num(n)} €`;
  const OUTCOME = {solved: "✔", forced: "✋", skipped: "⏭", unsolved: "✖", not_reached: "—"};
  const RESULT = {won: "🏆", lost: "⌛", aborted: "■"};
  // on the TV the whole month shows this many lines at most (the rest said in one line)
  const TV_LINES = 10;

  function line(b) {
    return el("li", {class: "step-line", dataset: {amount: b.amount}},
      el("span", {class: b.amount < 0 ? "amount minus" : "amount plus"}, signed(b.amount)), " ",
      el("span", {class: "why"}, words(b.label, b.label_en)),
      b.balance === undefined ? null : el("span", {class: "balance"}, ` → ${money(b.balance)}`));
  }

  function counter(choice, opts) {
    const label = words(choice.label, choice.label_en);
    const kids = [el("span", {class: "pict", "aria-hidden": "true"}, choice.icon),
      el("span", {class: "label"}, label),
      el("strong", {class: "count"}, String(choice.count))];
    if (opts.onCount) {
      kids.push(el("span", {class: "buttons"},
        el("button", {type: "button", class: "minus", "aria-label": `${t("step_less")} ${label}`,
                      disabled: choice.count === 0 ? "" : null,
                      onclick: () => opts.onCount(choice.id, choice.count - 1)}, "−"),
        el("button", {type: "button", class: "plus", "aria-label": `${t("step_more")} ${label}`,
                      onclick: () => opts.onCount(choice.id, choice.count + 1)}, "+")));
    }
    return el("li", {class: "choice-count", dataset: {choice: choice.id, count: choice.count}}, ...kids);
  }

  function top(b) {
    return el("p", {class: "step-budget"}, `💶 ${t("step_budget_start")} ${money(b.start)} · `,
      `${t("step_budget_end")} `, el("strong", {}, money(b.final)),
      b.change === null ? "" : ` (${signed(b.change)})`);
  }

  function feelings(c, opts) {
    const result = c.result ? t(`result_${c.result}`) : "";
    return [
      el("p", {class: "step-result"}, result,
        c.time_used_s === null ? "" : ` · ⏱ ${fmt(c.time_used_s)}`,
        ` · 🧩 ${t("step_found", {n: c.solved, of: c.puzzles_total})}`),
      top(c.budget),
      el("p", {class: "step-ask"}, t("step_feelings_ask")),
      el("ul", {class: "choices feelings"}, ...c.choices.map((x) => counter(x, {onCount: opts.onCount && ((id, n) => opts.onCount("feelings", id, n))})))];
  }

  function storyText(e) {
    if (e.kind === "start") return t("step_story_start");
    if (e.kind === "end") {
      const end = t(`step_end_${e.result || "running"}`);
      return e.not_reached ? `${end} · ${t(e.not_reached > 1 ? "step_story_not_reached" : "step_story_not_reached_one", {n: e.not_reached})}` : end;
    }
    const clues = e.clues ? ` · 💡 ${t(e.clues > 1 ? "step_clues" : "step_clue", {n: e.clues})}` : "";
    return `${words(e.room, e.room_en)} — « ${words(e.label, e.label_en)} » : ${t(`step_outcome_${e.outcome}`)}${clues}`;
  }

  function story(c) {
    return [top(c.budget),
      el("ol", {class: "story"}, ...c.events.map((e) => el("li", {class: `story-${e.kind}`, dataset: {kind: e.kind}},
        el("span", {class: "at"}, e.at_s === null ? "—" : fmt(e.at_s)),
        el("span", {class: "pict", "aria-hidden": "true"}, e.kind === "puzzle" ? OUTCOME[e.outcome] : e.kind === "start" ? "▶" : RESULT[e.result] || "■"),
        el("span", {class: "what"}, storyText(e)),
        e.lines.length ? el("ul", {class: "lines"}, ...e.lines.map(line)) : null)))];
  }

  function theme(c) {
    return [
      el("p", {class: "step-message", dataset: {theme: c.theme}}, words(c.message, c.message_en)),
      el("div", {class: "theme-cols"},
        el("div", {class: "theme-did"},
          el("h3", {}, t("step_theme_did")),
          el("ul", {class: "theme-puzzles"}, ...c.puzzles.map((p) => el("li", {dataset: {outcome: p.outcome}},
            `${OUTCOME[p.outcome]} ${words(p.label, p.label_en)} — ${t(`step_outcome_${p.outcome}`)}`,
            p.clues ? ` · 💡 ${p.clues}` : ""))),
          el("h3", {}, t("step_theme_budget"), " ", el("span", {class: "total"}, c.lines.length ? signed(c.total) : "")),
          c.lines.length ? el("ul", {class: "lines"}, ...c.lines.map(line)) : el("p", {class: "none"}, t("step_theme_no_line")),
          c.bills.length ? el("ul", {class: "step-bills"}, ...c.bills.map((b) => el("li", {dataset: {bill: b.id, status: b.status}},
            `${b.icon} ${words(b.label, b.label_en)} : ${t(`step_bill_${b.status}`)}`))) : null),
        el("div", {class: "theme-call"},
          el("h3", {}, `📞 ${t("step_theme_call")}`),
          el("ul", {class: "contacts"}, ...c.contacts.map((x) => el("li", {class: "contact"},
            el("span", {class: "pict", "aria-hidden": "true"}, x.icon), el("span", {class: "who"}, words(x.who, x.who_en)),
            el("strong", {class: "phone"}, x.phone), x.example ? el("span", {class: "example"}, t("step_example")) : null)))))];
  }

  function home(c, opts) {
    const tv = !opts.onCount;
    const shown = tv && c.lines.length > TV_LINES ? c.lines.slice(-TV_LINES) : c.lines;
    const m = c.month, whole = Math.max(m.income, m.spent, 1);
    return [
      el("div", {class: "home-cols"},
        el("div", {class: "home-do"},
          el("p", {class: "step-ask"}, t("step_home_ask")),
          ...c.themes.map((th) => el("div", {class: "home-theme", dataset: {theme: th.theme}},
            el("h3", {}, `${th.icon} ${words(th.title, th.title_en)}`),
            el("ul", {class: "choices"}, ...th.choices.map((x) => counter(x, {onCount: opts.onCount && ((id, n) => opts.onCount("at_home", id, n))})))))),
        el("div", {class: "home-month"},
          el("h3", {}, `💶 ${t("step_month")}`),
          el("div", {class: "month-bar", role: "img", "aria-label": `${t("screen_income")} ${money(m.income)}, ${t("screen_spent")} ${money(m.spent)}, ${t("screen_left")} ${money(m.left)}`},
            el("div", {class: "spent", style: `width:${(100 * Math.min(m.spent, whole)) / whole}%`}),
            el("div", {class: "left", style: `width:${(100 * Math.max(m.left, 0)) / whole}%`})),
          el("p", {class: "month-figures"}, `${t("screen_income")} ${money(m.income)} · ${t("screen_spent")} ${money(m.spent)} · `,
            el("strong", {}, `${t("screen_left")} ${money(m.left)}`)),
          el("ul", {class: "step-bills"}, ...c.bills.map((b) => el("li", {dataset: {bill: b.id, status: b.status}},
            `${b.icon} ${words(b.label, b.label_en)} : ${t(`step_bill_${b.status}`)}`))),
          el("ul", {class: "lines month-lines"}, ...shown.map(line)),
          shown.length < c.lines.length ? el("p", {class: "none"}, t("step_more_lines", {n: c.lines.length - shown.length})) : null))];
  }

  // *view*: a session's debrief (its pages, the one shown, its content); *opts.onCount*
  // (step, choice, count): the console's counters (none on a TV).
  function draw(box, view, opts = {}) {
    const p = view.pages[view.page], c = view.content;
    const title = p.kind === "theme"
      ? `${p.icon} ${words(p.title, p.title_en)} · ${t("step_theme_of", {i: c.index, n: c.of})}` : t(`step_title_${p.kind}`);
    const kids = p.kind === "feelings" ? feelings(c, opts) : p.kind === "story" ? story(c)
      : p.kind === "theme" ? theme(c) : home(c, opts);
    box.dataset.page = view.page;
    box.dataset.step = view.step;
    box.dataset.kind = p.kind;
    box.replaceChildren(
      el("div", {class: "step-head"},
        el("span", {class: "step-n"}, t("step_n", {n: view.step})),
        el("h2", {class: "step-title"}, p.kind === "theme" ? `${t("step_title_theme")} — ${title}` : title)),
      el("div", {class: "step-body"}, ...kids));
  }

  return {draw};
})();
window.DebriefSteps = DebriefSteps;
