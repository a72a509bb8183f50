/* mo-explorer widget, part 1 of 8: ranking. The same formulas as mo_explorer/ranking.py (scalarise,
 * rank_values, turned, plane_weights, winning_sectors), parity-tested in tests/e2e/test_ranking_js.py. */
(function (M) {
  "use strict";

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

  /** The first maximum's position (numpy's argmax). */
  function argmax(values) {
    let best = 0;
    for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
    return best;
  }

  function objectiveRows(payload) {
    return payload.values.map((row) => row.slice(0, payload.n_objectives));
  }

  function rankOrder(payload, weights, method) {
    return order(scalarise(objectiveRows(payload), weights, method, payload.eps));
  }

  /** Weights with the plotted pair set to (cos θ, sin θ), the pinned (off-plot) ones kept. */
  function turned(w, ix, iy, deg) {
    const out = w.slice();
    const t = (deg * Math.PI) / 180;
    out[ix] = Math.cos(t);
    out[iy] = Math.sin(t);
    return out;
  }

  /** [θ in degrees, pins]: the plotted pair's angle and the other weights relative to the pair's length. */
  function planeWeights(w, ix, iy) {
    const r = Math.hypot(w[ix], w[iy]);
    const norm = Math.sqrt(w.reduce((s, x) => s + x * x, 0));
    const scale = r > 1e-9 ? r : Math.max(norm, 1);
    const pins = w.map((x, j) => (j === ix || j === iy ? 0 : x / scale));
    if (r <= 1e-9) return [45, pins];
    const deg = (Math.atan2(w[iy], w[ix]) * 180) / Math.PI;
    return [((deg % 360) + 360) % 360, pins];
  }

  /** [[position, lo, hi], ...] covering [0, 360): who ranks first as the plotted pair turns (winning_sectors). */
  function winningSectors(Z, w, ix, iy, method, eps, samples, tol) {
    if (!Z.length) return [];
    const win = (deg) => argmax(scalarise(Z, turned(w, ix, iy, deg), method, eps));
    function boundaries(a, wa, b, wb) {
      while (b - a > tol) {
        const m = (a + b) / 2;
        const wm = win(m);
        if (wm === wa) a = m;
        else if (wm === wb) b = m;
        else return boundaries(a, wa, m, wm).concat(boundaries(m, wm, b, wb));
      }
      return [[b, wb]];
    }
    const step = 360 / samples;
    const angles = [];
    for (let s = 0; s < samples; s++) angles.push(s * step);
    angles.push(360);
    const winners = angles.slice(0, samples).map(win);
    winners.push(winners[0]);
    let cuts = [[0, winners[0]]];
    for (let s = 0; s < samples; s++) {
      if (winners[s] !== winners[s + 1]) cuts = cuts.concat(boundaries(angles[s], winners[s], angles[s + 1], winners[s + 1]));
    }
    const out = [];
    cuts.forEach(([lo, pos], i) => {
      const hi = i + 1 < cuts.length ? cuts[i + 1][0] : 360;
      if (hi > lo) out.push([pos, lo, hi]);
    });
    return out;
  }

  /** The position whose sector holds the angle θ. */
  function sectorAt(sectors, deg) {
    const t = ((deg % 360) + 360) % 360;
    for (const [pos, lo, hi] of sectors) if (lo <= t && t < hi) return pos;
    return sectors.length ? sectors[sectors.length - 1][0] : -1;
  }

  M.ranking = { unit, scalarise, order, argmax, objectiveRows, rankOrder, turned, planeWeights, winningSectors,
    sectorAt };
  // kept at the top level for the parity tests and the console
  Object.assign(M, { scalarise, order, rankOrder, winningSectors });
})(window.MoExplorer = window.MoExplorer || {});
