/* mo-explorer widget, part 5 of 8: live. A round being written (payload `live`, mo_explorer/ui/live.py): a card per
 * row with its text so far, and in a steered round a point per row where its partial answer was scored at the last
 * block, over the round it is written from. Points glide to their new place (a CSS transition), a dropped row's old
 * point fades out where it was. set() only stores what came; draw() runs in the widget's one redraw per animation
 * frame. Model output is untrusted: it only ever reaches the DOM through textContent. */
(function (M) {
  "use strict";
  const FADE_MS = 1200; // how long a dropped row's point takes to fade (pareto.css: moex-live-fade)

  function create(root, overlay) {
    const el = M.lists.el;
    const box = el("div", "moex-live");
    const title = el("h4", "", "Being written");
    const ol = el("ol");
    box.append(title, ol);
    box.style.display = "none";
    root.append(box);
    const layer = M.overlay.svg("g", { class: "moex-live-points" });
    overlay.append(layer); // first: under everything the overlay draws later (the ring, the arrow, its handle)
    const cards = new Map(); // row -> its card
    const dots = new Map(); // "r<row>" (being written) or "c<index>" (ended) -> its circle
    let live = null, seen = 0, fading = [], notes = new Map();
    const ghosts = new Set(); // the dropped rows' fading points now on the plot

    function card(row) {
      const li = el("li", "moex-card moex-live-card");
      li.dataset.row = row;
      const head = el("div", "moex-card-head");
      head.append(el("span", "moex-card-id"), el("span", "moex-card-value"));
      li.append(head, el("div", "moex-live-note"), el("div", "moex-card-text"));
      return li;
    }

    /** A new live state from Python (or null when the round is over); dropped rows are taken once, by seq. */
    function set(next) {
      live = next;
      if (!next) { // the round is over: its own points replace all of it, on its own scale
        cards.clear();
        ol.replaceChildren();
        notes.clear();
        fading = [];
        ghosts.forEach((c) => c.remove());
        ghosts.clear();
        return;
      }
      if (next.seq > seen && next.dropped.length) {
        fading.push(...next.dropped);
        notes = new Map(next.dropped.map((d) => [d.row, d.to]));
      }
      seen = Math.max(seen, next.seq);
      title.textContent = next.points.length || next.done.length
        ? "Being written along the arrow (at every block the rows that rank lowest go on from the best)"
        : "Being written";
    }

    function drawCards() {
      const rows = live ? live.rows : [];
      box.style.display = rows.length ? "" : "none";
      const present = new Set(rows.map((r) => r.row));
      for (const row of cards.keys()) if (!present.has(row)) cards.delete(row);
      rows.forEach((r) => {
        if (!cards.has(r.row)) cards.set(r.row, card(r.row));
        const li = cards.get(r.row);
        li.style.borderLeftColor = r.colour;
        li.querySelector(".moex-card-id").textContent = `row ${r.row}`;
        const to = notes.get(r.row);
        li.querySelector(".moex-card-value").textContent = `${r.tokens} tokens`;
        li.querySelector(".moex-live-note").textContent = to === undefined ? "" : `dropped at the last block: goes on from row ${to}`;
        li.classList.toggle("moex-live-restarted", to !== undefined);
        const text = li.querySelector(".moex-card-text");
        if (text.textContent !== r.text) text.textContent = r.text;
      });
      const order = rows.map((r) => cards.get(r.row));
      if (order.length !== ol.children.length || order.some((li, i) => ol.children[i] !== li)) ol.replaceChildren(...order);
    }

    function dot(key, cls, colour) {
      let c = dots.get(key);
      if (!c) {
        c = M.overlay.svg("circle", { class: cls, r: cls === "moex-live-done" ? 8 : 7, cx: 0, cy: 0 });
        layer.append(c);
        dots.set(key, c);
      }
      c.setAttribute("fill", colour);
      c.setAttribute("stroke", colour);
      return c;
    }

    /** Points over the plot (ax: its pixel mapping, or null when the plot shows another round than the points';
     * [ix, iy]: the plotted columns, picked from each point's values). */
    function drawPoints(ax, [ix, iy]) {
      const want = new Map();
      if (ax && live) {
        live.points.forEach((p) => want.set(`r${p.row}`, [p, "moex-live-point"]));
        live.done.forEach((p) => want.set(`c${p.index}`, [p, "moex-live-done"]));
      }
      for (const [key, c] of dots) {
        if (!want.has(key)) {
          c.remove();
          dots.delete(key);
        }
      }
      for (const [key, [p, cls]] of want) {
        const c = dot(key, cls, p.colour);
        c.dataset.row = p.row ?? "";
        c.style.transform = `translate(${ax.px(p.values[ix])}px, ${ax.py(p.values[iy])}px)`;
      }
      if (!ax) fading = [];
      for (const d of fading.splice(0)) { // where the dropped row was, fading out, then gone
        const c = M.overlay.svg("circle", { class: "moex-live-dropped", r: 7, cx: ax.px(d.values[ix]),
          cy: ax.py(d.values[iy]) });
        c.dataset.row = d.row;
        layer.append(c);
        ghosts.add(c);
        setTimeout(() => {
          c.remove();
          ghosts.delete(c);
        }, FADE_MS);
      }
    }

    /** Every (x, y) the live view draws on the plotted columns [ix, iy]: the widget widens the ranges to hold them. */
    function extent([ix, iy]) {
      if (!live) return [];
      return [...live.points, ...live.done, ...fading].map((p) => [p.values[ix], p.values[iy]]);
    }

    return { set, extent, draw: (ax, xy) => { drawCards(); drawPoints(ax, xy || [0, 1]); }, state: () => live };
  }

  M.live = { create };
})(window.MoExplorer = window.MoExplorer || {});
