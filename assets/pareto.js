/* mo-explorer: the Pareto plot with a draggable preference arrow, reranked in the browser.
 *
 * Loaded through the gr.HTML component's `head` (after plotly.min.js); the component's js_on_load calls
 * MoExplorer.mount(element, props, watch, emit). Python sends a payload (mo_explorer.plotting.widget_payload):
 * the figure, the per-round normalised oriented values, weights over the objectives and the method. While the
 * arrow is dragged everything is recomputed here, every frame, with the formulas of mo_explorer.ranking; the
 * server hears about the direction only on release (emit.direction) and about clicks (emit.select).
 * Model output is untrusted: texts only ever reach the DOM through textContent.
 */
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const RING_INNER = 0.43; // ring of winning sectors, in normalised data units around the centre (0.5, 0.5)
  const RING_OUTER = 0.5;
  const ARROW_LEN = 0.465;
  const SECTOR_STEP = 1; // degrees between samples of the winner around the circle

  // ---- ranking: the same formulas as mo_explorer/ranking.py (scalarise, rank_values) ----------------------
  function unit(w) {
    const norm = Math.sqrt(w.reduce((s, x) => s + x * x, 0));
    if (!isFinite(norm) || norm === 0) return null;
    return w.map((x) => x / norm);
  }

  /** Values (n) of normalised oriented rows Z (n x k) under weights w (k); higher is better. */
  function scalarise(Z, w, method, eps) {
    const v = unit(w);
    if (v === null) return Z.map(() => 0);
    const k = v.length;
    if (method === "linear") {
      return Z.map((row) => {
        let s = 0;
        for (let j = 0; j < k; j++) s += row[j] * v[j];
        return s;
      });
    }
    // Tchebycheff: "prefer less" columns are flipped, then the worst weighted gap to the ideal point.
    const flipped = Z.map((row) => row.slice(0, k).map((x, j) => (v[j] < 0 ? -x : x)));
    const z = new Array(k).fill(-Infinity);
    for (const row of flipped) for (let j = 0; j < k; j++) z[j] = Math.max(z[j], row[j]);
    return flipped.map((row) => {
      let worst = -Infinity;
      for (let j = 0; j < k; j++) worst = Math.max(worst, Math.abs(v[j]) * (z[j] + eps - row[j]));
      return -worst;
    });
  }

  /** Positions (n) best first; ties keep the lower position first (numpy's stable argsort of -values). */
  function order(values) {
    return values.map((v, i) => i).sort((a, b) => (values[b] - values[a]) || (a - b));
  }

  function rankOrder(payload, weights, method) {
    const Z = payload.values.map((row) => row.slice(0, payload.n_objectives));
    return order(scalarise(Z, weights, method, payload.eps));
  }

  // ---- small DOM helpers ---------------------------------------------------------------------------------
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    return node;
  }
  const fmt = (x) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(3));

  // ---- the widget --------------------------------------------------------------------------------------
  function mount(element, props, watch, emit) {
    const root = el("div", "moex");
    const status = el("div", "moex-status", "Generate to see candidates here.");
    const controls = el("div", "moex-controls");
    const angleLabel = el("label", "moex-angle-label", "Direction angle ");
    const angle = el("input", "moex-angle");
    Object.assign(angle, { type: "range", min: "0", max: "359", step: "1", value: "45" });
    const angleOut = el("output", "moex-angle-out", "45°");
    angleLabel.append(angle, angleOut);
    const methodLabel = el("label", "moex-methods", "Scalarisation ");
    const methodSelect = el("select", "moex-method");
    for (const [value, label] of [["linear", "linear (v·r)"], ["tchebycheff", "Tchebycheff"]]) {
      const option = el("option", "", label);
      option.value = value;
      methodSelect.append(option);
    }
    methodLabel.append(methodSelect);
    const weightsBox = el("div", "moex-weights");
    controls.append(angleLabel, methodLabel, weightsBox);
    const plotWrap = el("div", "moex-plotwrap");
    const plot = el("div", "moex-plot");
    const overlay = svg("svg", { class: "moex-overlay" });
    plotWrap.append(plot, overlay);
    const lists = el("div", "moex-lists");
    const byDir = el("div", "moex-list moex-by-direction");
    const byScore = el("div", "moex-list moex-by-score");
    byDir.append(el("h4", "", "Ranked by your direction"), el("ol"));
    byScore.append(el("h4", "", "Ranked by the reward model's gated score"), el("ol"));
    lists.append(byDir, byScore);
    root.append(status, controls, plotWrap, lists);
    (element.querySelector(".moex-host") || element).append(root);

    const state = { payload: null, weights: [], method: "linear", dragging: false, frame: 0, sectors: [],
      dirCards: [], scoreCards: [] };

    const planar = () => {
      const p = state.payload;
      return p && p.x < p.n_objectives && p.y < p.n_objectives && p.x !== p.y;
    };
    const currentAngle = () => {
      const p = state.payload;
      const deg = (Math.atan2(state.weights[p.y], state.weights[p.x]) * 180) / Math.PI;
      return ((deg % 360) + 360) % 360;
    };
    /** Weights with the plotted pair turned to `deg`, keeping its length (the other weights stay). */
    function turned(deg) {
      const p = state.payload;
      const w = state.weights.slice();
      let r = Math.hypot(w[p.x], w[p.y]);
      if (r < 1e-9) {
        const rest = Math.sqrt(w.reduce((s, x) => s + x * x, 0));
        r = rest > 0 ? rest : 1;
      }
      const t = (deg * Math.PI) / 180;
      w[p.x] = r * Math.cos(t);
      w[p.y] = r * Math.sin(t);
      return w;
    }

    // ---- pixels <-> normalised data coordinates, from Plotly's own axes ----
    function axes() {
      const full = plot._fullLayout;
      if (!full || !full.xaxis || !full.yaxis) return null;
      const xa = full.xaxis, ya = full.yaxis;
      return {
        px: (x) => xa._offset + xa.l2p(x),
        py: (y) => ya._offset + ya.l2p(y),
        unit: Math.abs(xa.l2p(1) - xa.l2p(0)),
        cx: xa._offset + xa.l2p(0.5),
        cy: ya._offset + ya.l2p(0.5),
      };
    }

    function computeSectors() {
      state.sectors = [];
      if (!planar() || !state.payload.values.length) return;
      const runs = [];
      for (let a = 0; a < 360; a += SECTOR_STEP) {
        const best = rankOrder(state.payload, turned(a + SECTOR_STEP / 2), state.method)[0];
        const last = runs[runs.length - 1];
        if (last && last.pos === best) last.hi = a + SECTOR_STEP;
        else runs.push({ pos: best, lo: a, hi: a + SECTOR_STEP });
      }
      state.sectors = runs;
    }

    function arcPath(ax, lo, hi) {
      const pt = (r, deg) => {
        const t = (deg * Math.PI) / 180;
        return [ax.cx + r * ax.unit * Math.cos(t), ax.cy - r * ax.unit * Math.sin(t)];
      };
      const [x1, y1] = pt(RING_OUTER, lo), [x2, y2] = pt(RING_OUTER, hi);
      const [x3, y3] = pt(RING_INNER, hi), [x4, y4] = pt(RING_INNER, lo);
      const large = hi - lo > 180 ? 1 : 0;
      const ro = RING_OUTER * ax.unit, ri = RING_INNER * ax.unit;
      return `M${x1},${y1} A${ro},${ro} 0 ${large} 0 ${x2},${y2} L${x3},${y3} A${ri},${ri} 0 ${large} 1 ${x4},${y4} Z`;
    }

    // Overlay nodes are made once; a drag frame only moves the arrow and the winner mark (drawDynamic),
    // the sectors change only with the payload, the method or an off-plane weight (drawStatic).
    const sectorLayer = svg("g", { class: "moex-sectors" });
    const winner = svg("circle", { class: "moex-winner", r: 13 });
    const arrowLine = svg("line", { class: "moex-arrow" });
    const arrowHead = svg("path", { class: "moex-arrow-head" });
    const origin = svg("circle", { class: "moex-origin", r: 3 });
    const handle = svg("circle", { class: "moex-arrow-handle", r: 11 });
    const arrowParts = [sectorLayer, arrowLine, arrowHead, origin, handle];
    // The direction learned from the user's votes (payload.learned): a dashed arrow in a wedge of ±1 std.
    const learnedLayer = svg("g", { class: "moex-learned" });
    const learnedWedge = svg("path", { class: "moex-learned-wedge" });
    const learnedLine = svg("line", { class: "moex-learned-arrow" });
    const learnedHead = svg("path", { class: "moex-learned-head" });
    learnedLayer.append(learnedWedge, learnedLine, learnedHead);
    overlay.append(sectorLayer, learnedLayer, winner, arrowLine, arrowHead, origin, handle);
    handle.addEventListener("pointerdown", startDrag);

    function drawStatic() {
      const p = state.payload;
      const ax = axes();
      if (!p || !ax) return;
      overlay.setAttribute("width", plot.clientWidth);
      overlay.setAttribute("height", plot.clientHeight);
      const shown = planar();
      for (const part of arrowParts) part.style.display = shown ? "" : "none";
      drawLearned(ax, p.learned);
      if (!shown) return;
      sectorLayer.replaceChildren(...state.sectors.map((s) => svg("path", { class: "moex-sector",
        d: arcPath(ax, s.lo, s.hi), fill: p.colours[s.pos], "data-index": p.indices[s.pos], "data-lo": s.lo,
        "data-hi": s.hi })));
      origin.setAttribute("cx", ax.cx);
      origin.setAttribute("cy", ax.cy);
    }

    function drawLearned(ax, learned) {
      const shown = Boolean(learned && planar());
      learnedLayer.style.display = shown ? "" : "none";
      root.dataset.learnedAngle = shown ? learned.angle.toFixed(2) : "";
      if (!shown) return;
      const len = ARROW_LEN * 0.92 * ax.unit;
      const pt = (deg) => {
        const t = (deg * Math.PI) / 180;
        return [ax.cx + len * Math.cos(t), ax.cy - len * Math.sin(t)];
      };
      const std = Math.min(learned.std, 180);
      if (std >= 179.5) {
        learnedWedge.setAttribute("d", `M${ax.cx - len},${ax.cy} a${len},${len} 0 1 0 ${2 * len},0 `
          + `a${len},${len} 0 1 0 ${-2 * len},0 Z`);
      } else {
        const [x1, y1] = pt(learned.angle - std), [x2, y2] = pt(learned.angle + std);
        const large = 2 * std > 180 ? 1 : 0;
        learnedWedge.setAttribute("d", `M${ax.cx},${ax.cy} L${x1},${y1} A${len},${len} 0 ${large} 0 ${x2},${y2} Z`);
      }
      const [tipX, tipY] = pt(learned.angle);
      const back = (learned.angle * Math.PI) / 180 + Math.PI;
      const wing = (d) => [tipX + 11 * Math.cos(back + d), tipY - 11 * Math.sin(back + d)];
      const [l1, l2] = wing(0.45), [r1, r2] = wing(-0.45);
      learnedLine.setAttribute("x1", ax.cx);
      learnedLine.setAttribute("y1", ax.cy);
      learnedLine.setAttribute("x2", tipX);
      learnedLine.setAttribute("y2", tipY);
      learnedHead.setAttribute("d", `M${tipX},${tipY} L${l1},${l2} L${r1},${r2} Z`);
    }

    function drawDynamic(top) {
      const p = state.payload;
      const ax = axes();
      if (!p || !ax) return;
      const row = p.values[top];
      winner.style.display = row ? "" : "none";
      if (row) {
        winner.setAttribute("cx", ax.px(row[p.x]));
        winner.setAttribute("cy", ax.py(row[p.y]));
        winner.setAttribute("stroke", p.colours[top]);
        winner.dataset.index = p.indices[top];
      }
      if (!planar()) return;
      const t = (currentAngle() * Math.PI) / 180;
      const tipX = ax.cx + ARROW_LEN * ax.unit * Math.cos(t), tipY = ax.cy - ARROW_LEN * ax.unit * Math.sin(t);
      const head = 12, back = t + Math.PI;
      const wing = (d) => [tipX + head * Math.cos(back + d), tipY - head * Math.sin(back + d)];
      const [l1, l2] = wing(0.45), [r1, r2] = wing(-0.45);
      arrowLine.setAttribute("x1", ax.cx);
      arrowLine.setAttribute("y1", ax.cy);
      arrowLine.setAttribute("x2", tipX);
      arrowLine.setAttribute("y2", tipY);
      arrowHead.setAttribute("d", `M${tipX},${tipY} L${l1},${l2} L${r1},${r2} Z`);
      handle.setAttribute("cx", tipX);
      handle.setAttribute("cy", tipY);
    }

    function card(pos) {
      const p = state.payload;
      const li = el("li", "moex-card");
      li.dataset.index = p.indices[pos];
      li.style.borderLeftColor = p.colours[pos];
      const head = el("div", "moex-card-head");
      head.append(el("span", "moex-card-id", `#${p.indices[pos]}`), el("span", "moex-card-value"));
      const text = el("div", "moex-card-text", p.texts[pos] || "(empty response)");
      const bars = el("div", "moex-bars");
      p.columns.forEach((name, j) => {
        const bar = el("div", "moex-bar");
        bar.title = `${name}: ${fmt(p.raw[pos][j])} (normalised ${p.values[pos][j].toFixed(2)})`;
        const fill = el("span", "moex-bar-fill");
        fill.style.width = `${Math.round(p.values[pos][j] * 100)}%`;
        bar.append(el("span", "moex-bar-name", name), fill);
        bars.append(bar);
      });
      li.append(head, text, bars);
      li.addEventListener("click", () => emit.select({ index: p.indices[pos], round_id: p.round_id }));
      return li;
    }

    /** Put the cards (one per position) in ranked order; nodes are moved, not rebuilt, on every frame. */
    function renderList(target, cards, positions, values, label) {
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

    function syncControls() {
      const p = state.payload;
      methodSelect.value = state.method;
      const enabled = planar();
      angle.disabled = !enabled;
      if (enabled) {
        const deg = Math.round(currentAngle()) % 360;
        angle.value = String(deg);
        angleOut.textContent = `${deg}°`;
      } else {
        angleOut.textContent = "(put two objectives on the axes to drag)";
      }
      const v = unit(state.weights) || state.weights;
      weightsBox.querySelectorAll("input").forEach((input, j) => {
        if (document.activeElement !== input) input.value = v[j].toFixed(3);
      });
      root.dataset.angle = enabled ? currentAngle().toFixed(2) : "";
      root.dataset.method = state.method;
      if (p) root.dataset.roundId = p.round_id;
    }

    /** Rerank and redraw everything but the Plotly figure: this runs on every drag frame. */
    function update() {
      const p = state.payload;
      if (!p || !p.values.length) return;
      const Z = p.values.map((row) => row.slice(0, p.n_objectives));
      const values = scalarise(Z, state.weights, state.method, p.eps);
      const ranked = order(values);
      renderList(byDir, state.dirCards, ranked, values, state.method === "linear" ? "v·r" : "tcheb");
      root.dataset.top = String(p.indices[ranked[0]]);
      drawDynamic(ranked[0]);
      syncControls();
    }

    function buildWeightInputs() {
      const p = state.payload;
      weightsBox.replaceChildren();
      p.columns.slice(0, p.n_objectives).forEach((name, j) => {
        const lab = el("label", "moex-weight", name + " ");
        const input = el("input");
        Object.assign(input, { type: "number", step: "0.05", min: "-1", max: "1" });
        input.dataset.objective = name;
        input.addEventListener("change", () => {
          const value = parseFloat(input.value);
          if (!isFinite(value)) return;
          const w = state.weights.slice();
          w[j] = value;
          if (unit(w) === null) return; // all zero: keep the last valid direction
          state.weights = w;
          computeSectors();
          drawStatic();
          update();
          commit("weights");
        });
        lab.append(input);
        weightsBox.append(lab);
      });
    }

    function commit(source) {
      const p = state.payload;
      const v = unit(state.weights);
      if (!p || v === null) return;
      emit.direction({ round_id: p.round_id, session_id: p.session_id, objectives: p.columns.slice(0, p.n_objectives),
        weights: v, method: state.method, angle: planar() ? currentAngle() : null, source });
    }

    // ---- dragging: pointer events on the overlay, one rerank per animation frame ----
    function angleAt(ev) {
      const ax = axes();
      const box = overlay.getBoundingClientRect();
      const dx = ev.clientX - box.left - ax.cx, dy = -(ev.clientY - box.top - ax.cy);
      return ((Math.atan2(dy, dx) * 180) / Math.PI + 360) % 360;
    }
    function moveTo(deg) {
      state.weights = turned(deg);
      if (!state.frame) {
        state.frame = requestAnimationFrame(() => {
          state.frame = 0;
          update();
        });
      }
    }
    function startDrag(ev) {
      if (!planar()) return;
      ev.preventDefault();
      state.dragging = true;
      root.classList.add("moex-dragging");
      overlay.setPointerCapture(ev.pointerId);
      moveTo(angleAt(ev));
    }
    overlay.addEventListener("pointermove", (ev) => {
      if (state.dragging) moveTo(angleAt(ev));
    });
    const endDrag = (ev) => {
      if (!state.dragging) return;
      state.dragging = false;
      root.classList.remove("moex-dragging");
      if (overlay.hasPointerCapture(ev.pointerId)) overlay.releasePointerCapture(ev.pointerId);
      moveTo(angleAt(ev));
      cancelAnimationFrame(state.frame);
      state.frame = 0;
      update();
      commit("arrow");
    };
    overlay.addEventListener("pointerup", endDrag);
    overlay.addEventListener("pointercancel", endDrag);

    angle.addEventListener("input", () => moveTo(parseFloat(angle.value)));
    angle.addEventListener("change", () => {
      state.weights = turned(parseFloat(angle.value));
      update();
      commit("angle");
    });
    methodSelect.addEventListener("change", () => {
      state.method = methodSelect.value;
      computeSectors();
      drawStatic();
      update();
      commit("method");
    });

    /** The figure's layout in the page's colours: Gradio's dark mode puts the class "dark" on <body>. */
    function themed(layout) {
      if (!document.body.classList.contains("dark")) return layout;
      const text = getComputedStyle(root).color;
      const grid = "rgba(255, 255, 255, 0.12)";
      const axis = (a) => ({ ...a, gridcolor: grid, linecolor: grid, tickfont: { color: text } });
      return { ...layout, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
        font: { ...(layout.font || {}), color: text }, xaxis: axis(layout.xaxis), yaxis: axis(layout.yaxis) };
    }

    // ---- a new payload from Python ----
    function load(payload) {
      if (!payload || typeof payload !== "object" || !payload.columns) {
        state.payload = null;
        for (const part of [...arrowParts, winner, learnedLayer]) part.style.display = "none";
        root.dataset.learnedAngle = "";
        status.textContent = "Generate to see candidates here.";
        root.classList.add("moex-empty");
        return;
      }
      const sameColumns = state.payload && state.payload.columns.join("\u0000") === payload.columns.join("\u0000");
      state.payload = payload;
      state.weights = payload.weights.slice();
      state.method = payload.method;
      root.classList.remove("moex-empty");
      const n = payload.values.length;
      status.textContent = payload.status === "running"
        ? `${n} candidate${n === 1 ? "" : "s"} scored so far…`
        : `${n} candidate${n === 1 ? "" : "s"}. Drag the arrow\u2019s head to rerank; click a point or a card to read it.`;
      if (!sameColumns) buildWeightInputs();
      state.dirCards = payload.values.map((row, pos) => card(pos));
      state.scoreCards = payload.values.map((row, pos) => card(pos));
      byDir.querySelector("ol").replaceChildren();
      byScore.querySelector("ol").replaceChildren();
      const fig = payload.figure;
      Plotly.react(plot, fig.data, themed(fig.layout), { displayModeBar: false, responsive: true }).then(() => {
        computeSectors();
        drawStatic();
        update();
        const scores = payload.raw.map((row) => row[payload.n_objectives]);
        renderList(byScore, state.scoreCards, order(scores), scores, "score");
      });
    }

    Plotly.newPlot(plot, [], { height: 480, template: "plotly_white" }, { displayModeBar: false, responsive: true })
      .then(() => {
        plot.on("plotly_afterplot", () => {
          if (!state.payload || state.dragging) return;
          drawStatic();
          update();
        });
        plot.on("plotly_click", (ev) => {
          const pt = ev.points && ev.points[0];
          if (pt && pt.customdata !== undefined && state.payload) {
            emit.select({ index: Number(pt.customdata), round_id: state.payload.round_id });
          }
        });
        load(props.value);
      });
    watch("value", () => load(props.value));
    element.moex = { state, update, load, rankOrder: (w, m) => rankOrder(state.payload, w, m) };
  }

  window.MoExplorer = { mount, scalarise, order, rankOrder };
})();
