/* mo-explorer widget, part 7 of 8: drag. Pointer events (mouse, pen and touch alike) on the arrow's handle;
 * the angle follows the pointer, drawn in the widget's one redraw per animation frame, and is committed on release. Linear: the angle of
 * the pointer seen from the centre. Tchebycheff: the ray from the reference corner through the pointer. */
(function (M) {
  "use strict";

  function attach(overlay, handle, widget) {
    let dragging = false, pending = null;

    function thetaAt(ev) {
      const ax = widget.axes();
      if (!ax) return null;
      const box = overlay.getBoundingClientRect();
      const x = ax.x(ev.clientX - box.left), y = ax.y(ev.clientY - box.top);
      if (widget.state.method === "linear") {
        return (((Math.atan2(y - 0.5, x - 0.5) * 180) / Math.PI) % 360 + 360) % 360;
      }
      return M.geometry.thetaFromAim(widget.state.dragCorner, x, y);
    }

    function move(ev) {
      const deg = thetaAt(ev);
      if (deg === null) return;
      pending = deg;
      widget.aim(deg);
    }

    handle.addEventListener("pointerdown", (ev) => {
      if (!widget.planar()) return;
      ev.preventDefault();
      dragging = true;
      widget.state.dragging = true;
      widget.state.dragCorner = widget.corner(); // Tchebycheff keeps its corner while dragging
      widget.root.classList.add("moex-dragging");
      overlay.setPointerCapture(ev.pointerId);
      move(ev);
    });
    overlay.addEventListener("pointermove", (ev) => {
      if (dragging) move(ev);
    });
    const end = (ev) => {
      if (!dragging) return;
      dragging = false;
      widget.state.dragging = false;
      widget.root.classList.remove("moex-dragging");
      if (overlay.hasPointerCapture(ev.pointerId)) overlay.releasePointerCapture(ev.pointerId);
      const deg = ev.type === "pointercancel" ? pending : thetaAt(ev);
      if (deg !== null && deg !== undefined) widget.setTheta(deg);
      widget.commit("arrow");
    };
    overlay.addEventListener("pointerup", end);
    overlay.addEventListener("pointercancel", end);
  }

  M.drag = { attach };
})(window.MoExplorer = window.MoExplorer || {});
