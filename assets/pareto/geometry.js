/* mo-explorer widget, part 2 of 8: geometry. Pixels <-> normalised data coordinates (from Plotly's own axes),
 * ring arcs, where the arrow sits for each scalarisation, and where pinned weights move each point. */
(function (M) {
  "use strict";
  const R = () => M.ranking;

  /** Pixel mapping of the plot's axes, or null before Plotly has drawn them. */
  function axes(plot) {
    const full = plot._fullLayout;
    if (!full || !full.xaxis || !full.yaxis || !full.xaxis.l2p) return null;
    const xa = full.xaxis, ya = full.yaxis;
    const px = (x) => xa._offset + xa.l2p(x), py = (y) => ya._offset + ya.l2p(y);
    return {
      px, py,
      x: (p) => xa.p2l(p - xa._offset), // pixel -> data
      y: (p) => ya.p2l(p - ya._offset),
      unit: Math.abs(xa.l2p(1) - xa.l2p(0)), // pixels per data unit (equal on both axes)
      box: [xa._offset, ya._offset, xa._length, ya._length],
    };
  }

  /** Pixel point at `r` data units from the data point (cx, cy) in the direction `deg` (screen y is down). */
  function polar(ax, cx, cy, r, deg) {
    const t = (deg * Math.PI) / 180;
    return [ax.px(cx) + r * ax.unit * Math.cos(t), ax.py(cy) - r * ax.unit * Math.sin(t)];
  }

  /** SVG path of an annulus sector around data point (cx, cy) between angles lo < hi (degrees, any span up to
   * 360): drawn through the middle angle, so a full circle is two half arcs and never an empty path. */
  function arcPath(ax, cx, cy, inner, outer, lo, hi) {
    const mid = (lo + hi) / 2;
    const p = (r, deg) => polar(ax, cx, cy, r, deg).join(",");
    const ro = outer * ax.unit, ri = inner * ax.unit;
    return `M${p(outer, lo)} A${ro},${ro} 0 0 0 ${p(outer, mid)} A${ro},${ro} 0 0 0 ${p(outer, hi)}`
      + ` L${p(inner, hi)} A${ri},${ri} 0 0 1 ${p(inner, mid)} A${ri},${ri} 0 0 1 ${p(inner, lo)} Z`;
  }

  // ---- Tchebycheff: the arrow starts at the reference corner and aims through the candidate it favours ----
  const sign = (x) => (x >= 0 ? 1 : -1); // a zero weight is not flipped, as in ranking.scalarise

  /** The reference corner (data) for direction angle θ over the plotted columns: per axis the round's best
   * (or, for a "prefer less" weight, worst) value plus eps, as Tchebycheff's ideal point. */
  function corner(payload, deg, eps) {
    const t = (deg * Math.PI) / 180;
    const sx = sign(Math.cos(t)), sy = sign(Math.sin(t));
    const xs = payload.values.map((r) => r[payload.x]), ys = payload.values.map((r) => r[payload.y]);
    const end = (vals, s) => (s > 0 ? Math.max(...vals) + eps : Math.min(...vals) - eps);
    return { x: end(xs, sx), y: end(ys, sy), sx, sy };
  }

  /** Screen angle (degrees) of the ray from the corner along which weights at θ are balanced: every point
   * on it has equal weighted gaps to the corner on both axes, so the candidate it passes through ranks first. */
  function aimAngle(deg, sx, sy) {
    const t = (deg * Math.PI) / 180;
    const wx = Math.cos(t), wy = Math.sin(t);
    // the quadrant's signs may be given, so its edges (0, 90, ... degrees) map inside it
    const dx = -(sx || sign(wx)) * Math.abs(wy), dy = -(sy || sign(wy)) * Math.abs(wx);
    return (((Math.atan2(dy, dx) * 180) / Math.PI) % 360 + 360) % 360;
  }

  /** θ whose aim ray leaves the corner (signs sx, sy) towards the data point (x, y); null if it is the corner. */
  function thetaFromAim(c, x, y) {
    const ax = Math.max(0, -c.sx * (x - c.x)), ay = Math.max(0, -c.sy * (y - c.y)); // clamp into the box
    const wx = c.sx * ay, wy = c.sy * ax;
    if (wx === 0 && wy === 0) return null;
    return (((Math.atan2(wy, wx) * 180) / Math.PI) % 360 + 360) % 360;
  }

  /** Where each candidate sits once pinned weights count: positions (n) of [x, y] in data units such that the
   * plotted pair alone ranks them as the full weights do. Linear: moved along the arrow by the pins' share of
   * the score. Tchebycheff: pulled back on each axis until its gap there is at least its worst pinned gap. */
  function effective(payload, weights, method, eps) {
    const k = payload.n_objectives, ix = payload.x, iy = payload.y;
    const Z = R().objectiveRows(payload);
    if (method === "linear") {
      const r = Math.hypot(weights[ix], weights[iy]) || 1;
      const ux = weights[ix] / r, uy = weights[iy] / r;
      return Z.map((row) => {
        let off = 0;
        for (let j = 0; j < k; j++) if (j !== ix && j !== iy) off += weights[j] * row[j];
        return [row[ix] + (off / r) * ux, row[iy] + (off / r) * uy];
      });
    }
    const flipped = Z.map((row) => row.map((x, j) => (weights[j] < 0 ? -x : x)));
    const z = new Array(k).fill(-Infinity);
    for (const row of flipped) for (let j = 0; j < k; j++) z[j] = Math.max(z[j], row[j] + eps);
    return Z.map((row, i) => {
      let t = 0;
      for (let j = 0; j < k; j++) if (j !== ix && j !== iy) t = Math.max(t, Math.abs(weights[j]) * (z[j] - flipped[i][j]));
      const pull = (j) => {
        const w = Math.abs(weights[j]);
        if (w === 0) return row[j];
        const s = weights[j] < 0 ? -1 : 1;
        return s * Math.min(flipped[i][j], z[j] - t / w); // back to unflipped coordinates
      };
      return [pull(ix), pull(iy)];
    });
  }

  M.geometry = { axes, polar, arcPath, corner, aimAngle, thetaFromAim, effective };
})(window.MoExplorer = window.MoExplorer || {});
