/* mo-explorer widget, part 8 of 8: the widget. MoExplorer.mount(element, props, watch, emit) builds the parts
 * (controls, plot + overlay, live, lists, drag) around one state and one refresh(), redrawn at most once per
 * animation frame (schedule): a drag and a round being written share that frame, so dragging stays smooth while
 * the points of a steered round move.
 *
 * Python sends a payload (mo_explorer.plotting.widget_payload): the figure, the per-round normalised oriented
 * values, weights over the objectives, the method and the overlay's constants. The page's model of a direction:
 * the arrow sets the plotted pair (angle θ, length 1) and objectives off the plot weigh nothing unless pinned
 * (state.pins, relative to the arrow). Everything is recomputed here on every drag frame; the server hears about
 * the direction only on release (emit.direction) and about clicks (emit.select).
 */
(function (M) {
  "use strict";

  function mount(element, props, watch, emit) {
    const el = M.lists.el, R = M.ranking, G = M.geometry; // the other parts, loaded before any mount
    const root = el("div", "moex moex-empty");
    const state = { payload: null, theta: 45, pins: [], full: [], method: "linear", frontAll: false,
      dragging: false, dragCorner: null, sectors: [], sectorKey: "" };
    const widget = { root, state };
    const controls = M.controls.create(root, state, {
      angle: (deg, done) => {
        widget.setTheta(deg);
        if (done) widget.commit("angle");
      },
      change: (kind) => {
        refresh();
        widget.commit(kind);
      },
      front: () => restyleFront(),
    });
    const plotWrap = el("div", "moex-plotwrap");
    const plot = el("div", "moex-plot");
    const placeholder = el("div", "moex-placeholder", "Generate to see candidates here.");
    const overlay = M.overlay.svg("svg", { class: "moex-overlay" });
    plotWrap.append(plot, overlay, placeholder);
    root.append(plotWrap);
    const live = M.live.create(root, overlay); // the cards being written above the ranked lists; points under the arrow
    const lists = M.lists.create(root);
    (element.querySelector(".moex-host") || element).append(root);
    const drawing = M.overlay.create(overlay);

    const planar = () => {
      const p = state.payload;
      return Boolean(p && p.x < p.n_objectives && p.y < p.n_objectives && p.x !== p.y);
    };
    const weights = () => (planar() ? R.turned(state.pins, state.payload.x, state.payload.y, state.theta) : state.full);
    const axes = () => G.axes(plot);
    const corner = () => G.corner(state.payload, state.theta, state.payload.eps);
    const pinned = () => state.pins.map((w, j) => [j, w]).filter(([, w]) => w !== 0);

    /** Rerank and redraw everything but the Plotly figure: this runs on every drag frame. */
    function refresh() {
      const p = state.payload;
      const ax = axes();
      if (!p || !p.values.length || !ax) return;
      const C = p.constants;
      const w = weights();
      const Z = R.objectiveRows(p);
      const values = R.scalarise(Z, w, state.method, p.eps);
      const ranked = R.order(values);
      const flat = planar();
      const key = `${state.method}|${state.pins.join(",")}|${p.round_id}|${p.values.length}|${p.x},${p.y}`;
      if (flat && key !== state.sectorKey) { // the ring depends on the pins and method, not on the angle
        state.sectors = R.winningSectors(Z, w, p.x, p.y, state.method, p.eps, C.sector_samples, C.sector_tol);
        state.sectorKey = key;
      }
      const pins = pinned();
      drawing.draw({
        p, C, theta: state.theta, weights: w, method: state.method, sectors: state.sectors, top: ranked[0],
        corner: flat ? corner() : null, learned: flat ? p.learned : null,
        effective: flat && pins.length ? G.effective(p, w, state.method, p.eps) : null,
        pins: pins.length ? ["also weighs:", ...pins.map(([j, v]) => `${p.labels[j]} ${v >= 0 ? "+" : ""}${v.toFixed(2)}`)] : [],
      }, ax, flat);
      lists.byDirection(ranked, values, state.method);
      controls.sync(p, flat, state.theta);
      Object.assign(root.dataset, { top: String(p.indices[ranked[0]]), angle: flat ? state.theta.toFixed(4) : "",
        method: state.method, roundId: p.round_id, learnedAngle: flat && p.learned ? p.learned.angle.toFixed(2) : "",
        pins: JSON.stringify(Object.fromEntries(pins.map(([j, v]) => [p.columns[j], v]))) });
    }

    /** The live view's points are drawn on the plot only while it shows the round they go with. */
    const liveOnPlot = () => {
      const l = live.state();
      return Boolean(l && l.base && state.payload && state.payload.round_id === l.base);
    };

    /** Widen the plot's ranges (never narrow them) to hold the live points, then redraw (a relayout of the ranges
     * alone does not emit plotly_afterplot). Returns whether it did. */
    function fitLive() {
      const pts = live.extent([state.payload.x, state.payload.y]);
      const layout = plot.layout;
      if (!pts.length || !layout || !layout.xaxis || !layout.xaxis.range) return false;
      const pad = 0.08;
      const grow = (range, values) => [Math.min(range[0], Math.min(...values) - pad), Math.max(range[1], Math.max(...values) + pad)];
      const xr = grow(layout.xaxis.range, pts.map((p) => p[0])), yr = grow(layout.yaxis.range, pts.map((p) => p[1]));
      if (xr[0] === layout.xaxis.range[0] && xr[1] === layout.xaxis.range[1] && yr[0] === layout.yaxis.range[0]
        && yr[1] === layout.yaxis.range[1]) return false;
      Plotly.relayout(plot, { "xaxis.range": xr, "yaxis.range": yr }).then(redraw);
      return true;
    }

    /** Everything drawn over and around the plot, now (after Plotly redrew, or from the scheduled frame). */
    function redraw() {
      if (state.payload) refresh();
      const on = liveOnPlot();
      live.draw(on ? axes() : null, on ? [state.payload.x, state.payload.y] : null);
    }

    let frame = 0;
    /** One redraw at the next animation frame, however many drag moves and live updates asked for it. */
    function schedule() {
      if (frame) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        if (!(liveOnPlot() && fitLive())) redraw();
      });
    }

    widget.axes = axes;
    widget.planar = planar;
    widget.corner = corner;
    widget.setTheta = (deg) => {
      state.theta = ((deg % 360) + 360) % 360;
      refresh();
    };
    widget.aim = (deg) => { // while dragging: the angle now, drawn with the next frame
      state.theta = ((deg % 360) + 360) % 360;
      schedule();
    };
    widget.commit = (source) => {
      const p = state.payload;
      const v = p && R.unit(weights());
      if (!v) return;
      emit.direction({ round_id: p.round_id, session_id: p.session_id, objectives: p.columns.slice(0, p.n_objectives),
        weights: v, method: state.method, angle: planar() ? state.theta : null, source });
    };
    M.drag.attach(overlay, drawing.handle, widget);

    function restyleFront() {
      const p = state.payload;
      const trace = (plot.data || []).findIndex((t) => t.name === "candidates");
      if (p && p.values.length && trace >= 0) {
        Plotly.restyle(plot, { "marker.symbol": [state.frontAll ? p.symbols_all : p.symbols_pair] }, [trace]);
      }
    }

    /** The figure's layout in the page's colours: Gradio's dark mode puts the class "dark" on <body>. */
    function themed(layout) {
      if (!document.body.classList.contains("dark")) return layout;
      const text = getComputedStyle(root).color;
      const grid = "rgba(255, 255, 255, 0.12)";
      const axis = (a) => ({ ...a, gridcolor: grid, linecolor: grid, tickfont: { color: text } });
      return { ...layout, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
        font: { ...(layout.font || {}), color: text }, xaxis: axis(layout.xaxis), yaxis: axis(layout.yaxis) };
    }

    function empty(message) {
      state.payload = null;
      drawing.hide();
      Object.assign(root.dataset, { top: "", angle: "", learnedAngle: "", pins: "{}" });
      controls.status.textContent = message;
      placeholder.textContent = message;
      root.classList.add("moex-empty");
      Plotly.react(plot, [], { height: 480, template: "plotly_white", xaxis: { visible: false },
        yaxis: { visible: false } }, CONFIG);
    }

    /** A round being written: its rows (and a steered round's points) over the round on the plot, if it is theirs. */
    function loadLive(l) {
      live.set(l);
      if (liveOnPlot()) {
        controls.status.textContent = l.points.length || l.done.length
          ? `${l.message} Coloured dots: the rows' answers so far, scored at every block, over the round they are written from.`
          : l.message;
      } else if (state.payload || !root.classList.contains("moex-empty")) {
        empty(l.message); // the plot's round is not this one: an empty plot until its first candidate is scored
      } else {
        controls.status.textContent = placeholder.textContent = l.message;
      }
      schedule();
    }

    // ---- a new payload from Python (or the live view of a round being written) ----
    function load(payload) {
      if (payload && payload.live && !payload.columns) return loadLive(payload.live);
      if (!payload || typeof payload !== "object" || !payload.columns) {
        live.set(null);
        empty("Generate to see candidates here.");
        return live.draw(null);
      }
      // the same candidates again (a vote refreshed the learned arrow): keep the cards, so a click is never lost
      const same = state.payload && state.payload.round_id === payload.round_id
        && JSON.stringify(state.payload.values) === JSON.stringify(payload.values);
      state.payload = payload;
      state.full = payload.weights.slice();
      if (planar()) [state.theta, state.pins] = R.planeWeights(payload.weights, payload.x, payload.y);
      else state.pins = payload.weights.map(() => 0);
      state.method = payload.method;
      state.sectorKey = "";
      root.classList.remove("moex-empty");
      const n = payload.values.length;
      const f = payload.front;
      const volume = f ? ` Front's hypervolume ${f.hypervolume.toFixed(3)}`
        + (f.rounds > 1 ? ` (best of the session's ${f.rounds} rounds: ${f.best.toFixed(3)}).` : ".") : "";
      controls.status.textContent = payload.status === "running"
        ? `${n} candidate${n === 1 ? "" : "s"} scored so far…`
        : `${n} candidate${n === 1 ? "" : "s"}.${volume} Drag the arrow\u2019s head to rerank; click a point or a card to read it.`;
      controls.status.dataset.hypervolume = f ? f.hypervolume.toFixed(6) : "";
      if (!same) lists.load(payload, emit.select);
      const fig = payload.figure;
      const points = fig.data.find((t) => t.name === "candidates");
      if (state.frontAll && points) points.marker.symbol = payload.symbols_all;
      live.set(payload.live || null);
      Plotly.react(plot, fig.data, themed(fig.layout), CONFIG).then(() => {
        if (!(liveOnPlot() && fitLive())) redraw();
      });
    }

    // Plotly's own PNG download stays; the zoom and pan buttons would fight the arrow and the fixed ranges.
    const CONFIG = { responsive: true, displaylogo: false, modeBarButtons: [["toImage"]] };
    Plotly.newPlot(plot, [], { height: 480, template: "plotly_white" }, CONFIG).then(() => {
      plot.on("plotly_afterplot", () => {
        if (!state.dragging) redraw();
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
    // for tests and the console: the state and the same ranking the page uses
    element.moex = root.moex = { state, refresh, redraw, load, live: live.state,
      rankOrder: (w, m) => R.rankOrder(state.payload, w, m) };
  }

  M.mount = mount;
})(window.MoExplorer = window.MoExplorer || {});
