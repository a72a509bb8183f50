"""What the steering tests read off the page: pixel positions of points, the arrow and the ring, and real
pointer drags of the arrow's head (mouse or touch)."""

from __future__ import annotations

import math

import numpy as np

from mo_explorer.schema import Candidate, Direction, GenerationParams
from tests.e2e.conftest import TIMEOUT

NAMES = ("helpful", "safe", "concise", "length_tokens", "gen_seconds")
# (helpful, safe) on the plot: a front of five (#0..#4) with #2 in a concave dent, and two behind it.
PLANE = [(0.0, 1.0), (0.2, 0.9), (0.45, 0.45), (0.9, 0.25), (1.0, 0.0), (0.2, 0.2), (0.5, 0.1)]
FRONT = [0, 1, 2, 3, 4]
CONCISE = [0.1, 0.2, 0.9, 0.3, 0.0, 1.0, 0.5]


def store_round(explorer, plane=PLANE, concise=CONCISE, direction=(1.0, 1.0)) -> tuple[str, str]:
    """A stored round with the given plotted values and a (helpful, safe) direction; (session_id, round_id)."""
    store = explorer.store
    session_id = store.create_session()
    round_id = store.create_round(session_id, [{"role": "user", "content": "Pick one"}], GenerationParams(n=len(plane)),
                                  "gen", "rm", NAMES, (False,) * 3 + (True,) * 2, (True,) * 3 + (False,) * 2,
                                  np.full(3, 1 / 3, np.float32), np.eye(3, dtype=np.float32))
    rows = [np.array([h, s, c, 10 + i, 1.0 + 0.1 * i], np.float32)
            for i, ((h, s), c) in enumerate(zip(plane, concise))]
    store.add_candidates(round_id, session_id,
                         [Candidate(i, f"answer {i}", r, 0.1 * i, 10 + i, 1.0) for i, r in enumerate(rows)])
    store.finish_round(round_id, session_id)
    store.add_direction(round_id, session_id, Direction(("helpful", "safe"), direction))
    return session_id, round_id


def data(page, key: str) -> str:
    return page.evaluate(f"document.querySelector('.moex').dataset.{key}")


def points(page) -> list[tuple[float, float]]:
    """Page pixel centres of the candidates' markers, by position."""
    return page.evaluate("""Array.from(document.querySelectorAll('.moex-plot .scatterlayer .trace:nth-child(3) .point'))
        .map((e) => { const b = e.getBoundingClientRect(); return [b.x + b.width / 2, b.y + b.height / 2]; })""")


def arrow(page) -> tuple[tuple[float, float], tuple[float, float]]:
    """Page pixel positions of the arrow's tail and tip."""
    return page.evaluate("""(() => {
        const line = document.querySelector('.moex-arrow'), box = line.ownerSVGElement.getBoundingClientRect();
        const a = (k) => +line.getAttribute(k);
        return [[box.x + a('x1'), box.y + a('y1')], [box.x + a('x2'), box.y + a('y2')]]; })()""")


def listed_first(page) -> str:
    return page.locator(".moex-by-direction li").first.get_attribute("data-index")


def ring_under_arrow(page) -> list[str]:
    """Candidates named by the ring sectors that the arrow crosses, halfway across the ring's band."""
    return page.evaluate("""(() => {
        const root = document.querySelector('.moex'), C = root.moex.state.payload.constants;
        const lin = root.moex.state.method === 'linear';
        const mid = lin ? (C.ring_inner + C.ring_outer) / 2 : (C.tcheb_ring_inner + C.tcheb_ring_outer) / 2;
        const f = mid / (lin ? C.arrow_len : C.tcheb_arrow_len);
        const line = root.querySelector('.moex-arrow'), a = (k) => +line.getAttribute(k);
        const pt = new DOMPoint(a('x1') + f * (a('x2') - a('x1')), a('y1') + f * (a('y2') - a('y1')));
        return Array.from(root.querySelectorAll('.moex-sector')).filter((s) => s.isPointInFill(pt))
          .map((s) => s.dataset.index); })()""")


def winner_name_clear_of_handle(page) -> tuple[str, bool]:
    """The number the plot writes beside the first-ranked point, and whether the arrow's handle leaves it uncovered."""
    return tuple(page.evaluate("""(() => {
        const label = document.querySelector('.moex-winner-label').getBoundingClientRect();
        const h = document.querySelector('.moex-arrow-handle').getBoundingClientRect();
        const r = h.width / 2, cx = h.x + r, cy = h.y + r;  // the handle is a circle
        const nx = Math.max(label.left, Math.min(cx, label.right));  // the label's point nearest the handle's centre
        const ny = Math.max(label.top, Math.min(cy, label.bottom));
        return [document.querySelector('.moex-winner-label').textContent, Math.hypot(nx - cx, ny - cy) > r];
    })()"""))


def farthest_along_arrow(page, selector: str | None = None) -> tuple[list[float], list[float]]:
    """Each marker's distance along the arrow (pixels) and the maximum: what 'farthest' means on screen."""
    (x1, y1), (x2, y2) = arrow(page)
    length = math.hypot(x2 - x1, y2 - y1)
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    pts = points(page) if selector is None else page.evaluate(
        f"Array.from(document.querySelectorAll('{selector}')).map((e) => {{ const b = e.getBoundingClientRect();"
        " return [b.x + b.width / 2, b.y + b.height / 2]; })")
    along = [(px - x1) * ux + (py - y1) * uy for px, py in pts]
    return along, max(along)


def centre(box: dict) -> tuple[float, float]:
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def drag_handle(page, path: list[tuple[float, float]], touch: bool = False) -> None:
    """Press the arrow's head, move through `path` (page pixels) and let go: real pointer events."""
    hx, hy = centre(page.locator(".moex-arrow-handle").bounding_box())
    if not touch:
        page.mouse.move(hx, hy)
        page.mouse.down()
        for x, y in path:
            page.mouse.move(x, y)
        page.mouse.up()
        return
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": hx, "y": hy}]})
    for x, y in path:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def turn_arrow_to(page, theta: float, steps: int = 6, touch: bool = False) -> None:
    """Drag the (linear) arrow's head round its tail to the angle θ, the short way, and wait for the page."""
    (cx, cy), (hx, hy) = arrow(page)
    radius, start = math.hypot(hx - cx, hy - cy), math.atan2(cy - hy, hx - cx)
    delta = (math.radians(theta) - start + math.pi) % (2 * math.pi) - math.pi
    path = [(cx + radius * math.cos(start + delta * i / steps), cy - radius * math.sin(start + delta * i / steps))
            for i in range(1, steps + 1)]
    drag_handle(page, path, touch)
    page.wait_for_function("(t) => Math.abs(((+document.querySelector('.moex').dataset.angle - t) % 360 + 540) % 360"
                           " - 180) < 0.5", arg=theta, timeout=TIMEOUT)


def aim_at(page, target: tuple[float, float], steps: int = 8) -> None:
    """Drag the arrow's head straight onto a page pixel (Tchebycheff: the arrow then passes through it)."""
    hx, hy = centre(page.locator(".moex-arrow-handle").bounding_box())
    tx, ty = target
    drag_handle(page, [(hx + (tx - hx) * i / steps, hy + (ty - hy) * i / steps) for i in range(1, steps + 1)])
