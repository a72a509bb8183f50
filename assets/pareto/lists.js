/* mo-explorer widget, part 4 of 8: lists. The two ranked lists of cards (by the arrow, by the reward model's
 * score). Model output is untrusted: it only ever reaches the DOM through textContent. */
(function (M) {
  "use strict";

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  const fmt = (x) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(3));

  function card(p, pos, onSelect) {
    const li = el("li", "moex-card");
    li.dataset.index = p.indices[pos];
    li.style.borderLeftColor = p.colours[pos];
    li.tabIndex = 0;
    const top = el("div", "moex-card-head");
    top.append(el("span", "moex-card-id", `#${p.indices[pos]}`), el("span", "moex-card-value"));
    const text = el("div", "moex-card-text", p.texts[pos] || "(empty response)");
    const bars = el("div", "moex-bars");
    p.columns.forEach((name, j) => {
      const bar = el("div", "moex-bar");
      const cost = p.maximize[j] ? "" : " (a cost: a full bar is the lowest)";
      bar.title = `${p.labels[j]}: ${fmt(p.raw[pos][j])}${cost}. ${p.descriptions[j] || ""}`;
      const fill = el("span", "moex-bar-fill");
      fill.style.width = `${Math.round(p.values[pos][j] * 100)}%`;
      if (!p.maximize[j]) fill.classList.add("moex-bar-cost");
      bar.append(el("span", "moex-bar-name", p.labels[j]), fill);
      bars.append(bar);
    });
    li.append(top, text, bars);
    const select = () => onSelect({ index: p.indices[pos], round_id: p.round_id });
    li.addEventListener("click", select);
    li.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        select();
      }
    });
    return li;
  }

  function create(root) {
    const lists = el("div", "moex-lists");
    const byDir = el("div", "moex-list moex-by-direction");
    const byScore = el("div", "moex-list moex-by-score");
    byDir.append(el("h4", "", "Ranked by your arrow"), el("ol"));
    byScore.append(el("h4", "", "Ranked by the reward model's score"), el("ol"));
    lists.append(byDir, byScore);
    root.append(lists);
    let dirCards = [], scoreCards = [];

    /** Put the cards (one per position) in ranked order; nodes are moved, not rebuilt, on every frame. */
    function render(target, cards, positions, values, label) {
      const ol = target.querySelector("ol");
      const key = positions.join(",");
      positions.forEach((pos, r) => {
        cards[pos].querySelector(".moex-card-value").textContent = `${r + 1}. ${label} ${fmt(values[pos])}`;
      });
      if (ol.dataset.order !== key || ol.children.length !== positions.length) {
        ol.replaceChildren(...positions.map((pos) => cards[pos]));
        ol.dataset.order = key;
      }
    }

    return {
      load(p, onSelect) {
        dirCards = p.values.map((row, pos) => card(p, pos, onSelect));
        scoreCards = p.values.map((row, pos) => card(p, pos, onSelect));
        byDir.querySelector("ol").replaceChildren();
        byScore.querySelector("ol").replaceChildren();
        const scores = p.raw.map((row) => row[p.n_objectives]);
        render(byScore, scoreCards, M.ranking.order(scores), scores, "score");
      },
      byDirection(positions, values, method) {
        render(byDir, dirCards, positions, values, method === "linear" ? "score along arrow" : "worst gap");
      },
    };
  }

  M.lists = { create, el, fmt };
})(window.MoExplorer = window.MoExplorer || {});
