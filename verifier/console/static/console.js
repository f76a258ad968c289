// The janua console's only script (docs/console.md): local and relative times, confirmation of dangerous
// actions, the navigation toggle on narrow screens. The pages work without it.
"use strict";

function relative(ms) {
  const s = Math.round((Date.now() - ms) / 1000);
  const a = Math.abs(s);
  const units = [[86400, "day"], [3600, "h"], [60, "min"]];
  let text = a + " s";
  for (const [n, name] of units) {
    if (a >= n) {
      const v = Math.floor(a / n);
      text = v + " " + name + (name === "day" && v !== 1 ? "s" : "");
      break;
    }
  }
  return s >= 0 ? text + " ago" : "in " + text;
}

function localTimes() {
  for (const el of document.querySelectorAll("time[datetime]")) {
    const ms = Date.parse(el.getAttribute("datetime"));
    if (Number.isNaN(ms)) continue;
    el.title = el.textContent;               // the UTC text stays as the tooltip
    el.textContent = new Date(ms).toLocaleString() + " (" + relative(ms) + ")";
  }
}

function confirmations() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (ev) => {
      if (!window.confirm(form.getAttribute("data-confirm"))) ev.preventDefault();
    });
  }
}

function navToggle() {
  const button = document.querySelector(".nav-toggle");
  if (!button) return;
  button.addEventListener("click", () => {
    const open = button.getAttribute("aria-expanded") === "true";
    button.setAttribute("aria-expanded", open ? "false" : "true");
    document.body.classList.toggle("nav-open", !open);
  });
}

document.documentElement.classList.add("js");
document.addEventListener("DOMContentLoaded", () => {
  localTimes();
  confirmations();
  navToggle();
});
