/* mo-explorer: keyboard shortcuts of the side-by-side comparison, as in Chatbot Arena.
 * A, B, T (tie), X (both bad) press the vote buttons; N asks for the next pair. Keys typed into a field are
 * left alone, and a disabled button (no pair shown yet) ignores its key. */
(function () {
  "use strict";
  if (window.MoExplorerArenaKeys) return; // loaded once per page
  window.MoExplorerArenaKeys = true;
  const KEYS = { a: "vote-a", b: "vote-b", t: "vote-tie", x: "vote-both-bad", n: "compare-next" };
  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) return;
    const target = ev.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    const id = KEYS[ev.key.toLowerCase()];
    const button = id && document.getElementById(id);
    if (!button || button.disabled) return;
    ev.preventDefault();
    button.click();
  });
})();
