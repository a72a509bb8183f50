/* mo-explorer widget, part 3 of 8: overlay. The SVG drawn over the Plotly figure: the ring of winning sectors,
 * the arrow and its handle, pinned weights next to it, where pins move the points, the iso-score line through
 * the winner, and the direction learned from votes. Redrawn whole on every refresh (a few dozen nodes). */
(function (M) {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const WINNER_R = 13; // px: the ring round the first-ranked point (a 13 px marker)
  const HANDLE_R = 22; // px: the arrow's handle
  let clipIds = 0;

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    return node;
  }

  function head(x1, y1, x2, y2, size) {
    const back = Math.atan2(y1 - y2, x1 - x2);
    const wing = (d) => [x2 + size * Math.cos(back + d), y2 + size * Math.sin(back + d)];
    const [l1, l2] = wing(0.45), [r1, r2] = wing(-0.45);
    return `M${x2},${y2} L${l1},${l2} L${r1},${r2} Z`;
  }

  function create(overlay) {
    const clipId = `moex-clip-${++clipIds}`;
    const clipRect = svg("rect");
    const clip = svg("clipPath", { id: clipId });
    clip.append(clipRect);
    const defs = svg("defs");
    defs.append(clip);
    const ring = svg("g", { class: "moex-sectors" });
    const clipped = svg("g", { "clip-path": `url(#${clipId})` });
    const ghosts = svg("g", { class: "moex-ghosts" });
    const iso = svg("path", { class: "moex-iso" });
    clipped.append(iso);
    const learned = svg("g", { class: "moex-learned" });
    const wedge = svg("path", { class: "moex-learned-wedge" });
    const learnedLine = svg("line", { class: "moex-learned-arrow" });
    const learnedHead = svg("path", { class: "moex-learned-head" });
    learned.append(wedge, learnedLine, learnedHead);
    const winner = svg("circle", { class: "moex-winner", r: WINNER_R });
    // the winner's number beside its ring, on a halo: Plotly's own label sits under the ring and the lines through it
    const winnerLabel = svg("text", { class: "moex-winner-label" });
    const arrowLine = svg("line", { class: "moex-arrow" });
    const arrowHead = svg("path", { class: "moex-arrow-head" });
    const origin = svg("circle", { class: "moex-origin", r: 4 });
    const pinLabel = svg("text", { class: "moex-pin-label" });
    // 22 px radius: a 44 px touch target, the size phones' guidelines ask for
    const handle = svg("circle", { class: "moex-arrow-handle", r: HANDLE_R });
    const arrow = [ring, arrowLine, arrowHead, origin, handle, pinLabel];
    // ghosts are not clipped: a large pinned weight can move a point past the axes, and it must stay visible
    overlay.append(defs, ring, clipped, ghosts, learned, winner, winnerLabel, arrowLine, arrowHead, origin, pinLabel,
      handle);

    function hide() {
      for (const part of [...arrow, winner, winnerLabel, learned, iso, ghosts]) part.style.display = "none";
    }

    function drawRing(v, ax) {
      const C = v.C;
      if (v.method === "linear") {
        let arcs = v.sectors;
        const first = arcs[0], last = arcs[arcs.length - 1];
        if (arcs.length > 1 && first[0] === last[0]) { // one arc through 0°, not two pieces meeting under the arrow
          arcs = [[last[0], last[1], first[2] + 360], ...arcs.slice(1, -1)];
        }
        ring.replaceChildren(...arcs.map(([pos, lo, hi]) => svg("path", { class: "moex-sector",
          d: M.geometry.arcPath(ax, 0.5, 0.5, C.ring_inner, C.ring_outer, lo, hi), fill: v.p.colours[pos],
          "data-index": v.p.indices[pos], "data-lo": lo, "data-hi": hi })));
        return;
      }
      // Tchebycheff: a quarter ring round the reference corner, one sector per winner in this sign quadrant
      const c = v.corner;
      const q0 = c.sx > 0 ? (c.sy > 0 ? 0 : 270) : (c.sy > 0 ? 90 : 180);
      const parts = [];
      for (const [pos, lo, hi] of v.sectors) {
        const a = Math.max(lo, q0), b = Math.min(hi, q0 + 90);
        if (b <= a) continue;
        let f1 = M.geometry.aimAngle(a, c.sx, c.sy), f2 = M.geometry.aimAngle(b, c.sx, c.sy);
        if (Math.abs(f1 - f2) > 180) (f1 < f2 ? (f1 += 360) : (f2 += 360));
        parts.push(svg("path", { class: "moex-sector", fill: v.p.colours[pos], "data-index": v.p.indices[pos],
          "data-lo": a, "data-hi": b, d: M.geometry.arcPath(ax, c.x, c.y, C.tcheb_ring_inner, C.tcheb_ring_outer,
            Math.min(f1, f2), Math.max(f1, f2)) }));
      }
      ring.replaceChildren(...parts);
    }

    /** Tail and tip of the arrow in pixels: from the centre along θ (linear), from the corner along the aim. */
    function arrowEnds(v, ax) {
      if (v.method === "linear") {
        return [[ax.px(0.5), ax.py(0.5)], M.geometry.polar(ax, 0.5, 0.5, v.C.arrow_len, v.theta)];
      }
      const c = v.corner;
      return [[ax.px(c.x), ax.py(c.y)], M.geometry.polar(ax, c.x, c.y, v.C.tcheb_arrow_len, M.geometry.aimAngle(v.theta))];
    }

    /** The winner's number beside its ring: above, else right, left or below, the first side whose label the arrow's
     * handle leaves clear (or the farthest from it), so the handle never covers it. tip: the arrow's tip, or null. */
    function placeWinnerLabel(x, y, tip) {
      const r = WINNER_R;
      const sides = [ // [label x, label y (baseline), anchor, the label's centre], in order of preference
        [x, y - r - 5, "middle", [x, y - r - 9]], [x + r + 4, y + 4, "start", [x + r + 14, y]],
        [x - r - 4, y + 4, "end", [x - r - 14, y]], [x, y + r + 14, "middle", [x, y + r + 10]]];
      const far = (side) => (tip ? Math.hypot(side[3][0] - tip[0], side[3][1] - tip[1]) : Infinity);
      const best = sides.find((side) => far(side) > HANDLE_R + 12) || sides.reduce((a, b) => (far(b) > far(a) ? b : a));
      winnerLabel.setAttribute("x", best[0]);
      winnerLabel.setAttribute("y", best[1]);
      winnerLabel.setAttribute("text-anchor", best[2]);
      winnerLabel.style.display = "";
    }

    /** Arrow, handle and pinned weights; returns the tip [x, y] in pixels. */
    function drawArrow(v, ax) {
      const [[x1, y1], [x2, y2]] = arrowEnds(v, ax);
      Object.entries({ x1, y1, x2, y2 }).forEach(([k, val]) => arrowLine.setAttribute(k, val));
      arrowHead.setAttribute("d", head(x1, y1, x2, y2, 13));
      origin.setAttribute("cx", x1);
      origin.setAttribute("cy", y1);
      handle.setAttribute("cx", x2);
      handle.setAttribute("cy", y2);
      const right = x2 >= x1;
      pinLabel.setAttribute("x", x2 + (right ? 26 : -26));
      pinLabel.setAttribute("y", y2 - 6);
      pinLabel.setAttribute("text-anchor", right ? "start" : "end");
      pinLabel.replaceChildren(...v.pins.map((text, i) => {
        const line = svg("tspan", { x: x2 + (right ? 26 : -26), dy: i ? "1.2em" : "0" });
        line.textContent = text;
        return line;
      }));
      pinLabel.style.display = v.pins.length ? "" : "none";
      return [x2, y2];
    }

    function drawIso(v, ax) {
      const e = (v.effective || v.p.values.map((r) => [r[v.p.x], r[v.p.y]]))[v.top];
      const t = (v.theta * Math.PI) / 180;
      const wx = Math.cos(t), wy = Math.sin(t);
      let d;
      if (v.method === "linear") { // the line of equal score through the winner: nothing lies beyond it
        const [ex, ey] = [ax.px(e[0]), ax.py(e[1])], L = 4 * ax.unit;
        d = `M${ex - L * wy},${ey - L * wx} L${ex + L * wy},${ey + L * wx}`;
      } else { // Tchebycheff's level set through the winner: a corner whose vertex lies on the aim ray
        const c = v.corner;
        const gap = Math.max(Math.abs(wx) * c.sx * (c.x - e[0]), Math.abs(wy) * c.sy * (c.y - e[1]));
        if (Math.abs(wx) < 1e-9 || Math.abs(wy) < 1e-9) {
          d = Math.abs(wx) < 1e-9 ? `M${ax.px(-1)},${ax.py(e[1])} L${ax.px(2)},${ax.py(e[1])}`
            : `M${ax.px(e[0])},${ax.py(-1)} L${ax.px(e[0])},${ax.py(2)}`;
        } else {
          const vx = c.x - (c.sx * gap) / Math.abs(wx), vy = c.y - (c.sy * gap) / Math.abs(wy);
          d = `M${ax.px(vx)},${ax.py(vy + c.sy * 3)} L${ax.px(vx)},${ax.py(vy)} L${ax.px(vx + c.sx * 3)},${ax.py(vy)}`;
        }
      }
      iso.setAttribute("d", d);
      iso.style.display = "";
    }

    function drawGhosts(v, ax) {
      ghosts.style.display = v.effective ? "" : "none";
      if (!v.effective) return;
      ghosts.replaceChildren(...v.effective.flatMap(([x, y], pos) => {
        const row = v.p.values[pos];
        const colour = v.p.colours[pos];
        return [svg("line", { class: "moex-ghost-link", x1: ax.px(row[v.p.x]), y1: ax.py(row[v.p.y]), x2: ax.px(x),
          y2: ax.py(y), stroke: colour }),
        svg("circle", { class: "moex-ghost", cx: ax.px(x), cy: ax.py(y), r: 6, stroke: colour,
          "data-index": v.p.indices[pos] })];
      }));
    }

    function drawLearned(v, ax) {
      const l = v.learned;
      learned.style.display = l ? "" : "none";
      if (!l) return;
      const half = Math.min(l.std, 170); // beyond that the wedge would close into a disc
      wedge.setAttribute("d", M.geometry.arcPath(ax, 0.5, 0.5, 0, v.C.learned_len, l.angle - half, l.angle + half));
      const [x1, y1] = [ax.px(0.5), ax.py(0.5)], [x2, y2] = M.geometry.polar(ax, 0.5, 0.5, v.C.learned_len, l.angle);
      Object.entries({ x1, y1, x2, y2 }).forEach(([k, val]) => learnedLine.setAttribute(k, val));
      learnedHead.setAttribute("d", head(x1, y1, x2, y2, 11));
    }

    /** Draw everything for view v ({p, theta, weights, method, sectors, top, effective, pins, learned, corner, C}). */
    function draw(v, ax, planar) {
      overlay.setAttribute("width", ax.box[0] + ax.box[2] + 40);
      overlay.setAttribute("height", ax.box[1] + ax.box[3] + 40);
      const [bx, by, bw, bh] = ax.box;
      Object.entries({ x: bx, y: by, width: bw, height: bh }).forEach(([k, val]) => clipRect.setAttribute(k, val));
      for (const part of arrow) part.style.display = planar ? "" : "none";
      drawLearned(v, ax);
      const pos = v.top;
      const at = v.effective ? v.effective[pos] : [v.p.values[pos][v.p.x], v.p.values[pos][v.p.y]];
      winner.style.display = "";
      winner.setAttribute("cx", ax.px(at[0]));
      winner.setAttribute("cy", ax.py(at[1]));
      winner.setAttribute("stroke", v.p.colours[pos]);
      winner.dataset.index = v.p.indices[pos];
      winnerLabel.textContent = `#${v.p.indices[pos]}`;
      if (!planar) {
        placeWinnerLabel(ax.px(at[0]), ax.py(at[1]), null);
        iso.style.display = "none";
        ghosts.style.display = "none";
        return;
      }
      drawRing(v, ax);
      placeWinnerLabel(ax.px(at[0]), ax.py(at[1]), drawArrow(v, ax));
      drawGhosts(v, ax);
      drawIso(v, ax);
    }

    return { draw, hide, handle };
  }

  M.overlay = { create, svg };
})(window.MoExplorer = window.MoExplorer || {});
