/* mo-explorer widget, part 6 of 8: controls. The status line, the angle slider (the arrow for keyboards),
 * the scalarisation, the pinned off-plot weights and which front the markers show. Each control calls
 * on.change(kind) after updating `state`; the widget then refreshes and commits. */
(function (M) {
  "use strict";
  const el = (...a) => M.lists.el(...a);

  function create(root, state, on) {
    const status = el("div", "moex-status", "Generate to see candidates here.");
    status.setAttribute("role", "status");
    const controls = el("div", "moex-controls");
    const angleLabel = el("label", "moex-angle-label", "Arrow angle ");
    const angle = el("input", "moex-angle");
    Object.assign(angle, { type: "range", min: "0", max: "359", step: "1", value: "45" });
    const angleOut = el("output", "moex-angle-out", "45°");
    angleLabel.append(angle, angleOut);
    const methodLabel = el("label", "moex-methods", "Rank by ");
    const method = el("select", "moex-method");
    for (const [value, label] of [["linear", "farthest along the arrow"], ["tchebycheff", "closest to the corner (Tchebycheff)"]]) {
      const option = el("option", "", label);
      option.value = value;
      method.append(option);
    }
    methodLabel.append(method);
    const pinBox = el("div", "moex-pins");
    const pinLabel = el("label", "moex-pin-add", "Also weigh ");
    const pinName = el("select", "moex-pin-name");
    const pinValue = el("input", "moex-pin-value");
    Object.assign(pinValue, { type: "number", step: "0.1", min: "-2", max: "2", value: "0.5" });
    const pinButton = el("button", "moex-pin-button", "Pin");
    pinButton.type = "button";
    pinLabel.append(pinName, pinValue, pinButton);
    const chips = el("span", "moex-pin-chips");
    pinBox.append(pinLabel, chips);
    const frontLabel = el("label", "moex-front-all", " ◆ = front over all objectives");
    const frontAll = el("input");
    frontAll.type = "checkbox";
    frontLabel.prepend(frontAll);
    controls.append(angleLabel, methodLabel, pinBox, frontLabel);
    root.append(status, controls);

    angle.addEventListener("input", () => on.angle(parseFloat(angle.value), false));
    angle.addEventListener("change", () => on.angle(parseFloat(angle.value), true));
    method.addEventListener("change", () => {
      state.method = method.value;
      on.change("method");
    });
    pinButton.addEventListener("click", () => {
      const j = parseInt(pinName.value, 10), value = parseFloat(pinValue.value);
      if (!isFinite(j) || !isFinite(value)) return;
      state.pins[j] = value;
      on.change("pin");
    });
    frontAll.addEventListener("change", () => {
      state.frontAll = frontAll.checked;
      on.front();
    });

    /** Rebuild the pin menu and chips: objectives off the plot, the pinned ones with their weight and a ×. */
    function syncPins(p) {
      const off = p.columns.slice(0, p.n_objectives).map((name, j) => j).filter((j) => j !== p.x && j !== p.y);
      const wanted = off.map((j) => `${j}`).join(",");
      if (pinName.dataset.options !== wanted) {
        pinName.replaceChildren(...off.map((j) => {
          const option = el("option", "", p.labels[j]);
          option.value = String(j);
          option.title = p.descriptions[j] || "";
          return option;
        }));
        pinName.dataset.options = wanted;
      }
      chips.replaceChildren(...off.filter((j) => state.pins[j] !== 0).map((j) => {
        const chip = el("span", "moex-pin-chip", `${p.labels[j]} ${state.pins[j] >= 0 ? "+" : ""}${state.pins[j].toFixed(2)} `);
        chip.dataset.objective = p.columns[j];
        const drop = el("button", "moex-unpin", "×");
        drop.type = "button";
        drop.title = `Stop weighing ${p.labels[j]}`;
        drop.addEventListener("click", () => {
          state.pins[j] = 0;
          on.change("unpin");
        });
        chip.append(drop);
        return chip;
      }));
    }

    function sync(p, planar, theta) {
      method.value = state.method;
      angle.disabled = !planar;
      pinButton.disabled = pinName.disabled = !planar;
      if (planar) {
        const deg = Math.round(theta) % 360;
        angle.value = String(deg);
        angleOut.textContent = `${deg}°`;
        syncPins(p);
      } else {
        angleOut.textContent = "(put two objectives on the axes to drag)";
        chips.replaceChildren();
      }
    }

    return { status, sync, frontAll };
  }

  M.controls = { create };
})(window.MoExplorer = window.MoExplorer || {});
