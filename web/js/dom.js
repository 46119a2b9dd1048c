// Small DOM helpers. Server data only ever reaches the page as text nodes or attributes.
"use strict";

export const $ = (id) => document.getElementById(id);

/** Create an element: h("p", {class: "x", text: "hello"}, child, "text"). Never parses HTML. */
export function h(tag, attrs = {}, ...children) {
  const svg = tag.startsWith("svg:");
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4)) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.setAttribute("class", value);
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") Object.assign(el.style, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "hidden") el.hidden = true;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  add(el, children);
  return el;
}

/** Append children, skipping null/undefined/false (Element.append would print them as text). */
export function add(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function formatBytes(n) {
  if (!Number.isFinite(n)) return "?";
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${Math.round(n / 1024)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function formatPercent(p, digits = 1) {
  return `${(100 * Number(p)).toFixed(digits)} %`;
}

export function formatMs(ms) {
  if (!Number.isFinite(ms)) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function formatDate(iso, short = false) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso || "");
  if (short) {
    const sameYear = d.getFullYear() === new Date().getFullYear();
    return d.toLocaleString(undefined, { month: "short", day: "numeric", year: sameYear ? undefined : "numeric", hour: "2-digit", minute: "2-digit" });
  }
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** "sensitivity_hemorrhage" -> "Sensitivity hemorrhage", with common acronyms kept upper-case. */
export function humanize(key) {
  const acronyms = { roc: "ROC", auc: "AUC", f1: "F1", ct: "CT", mr: "MR", mri: "MRI", id: "ID", ids: "IDs", bmi: "BMI",
    hu: "HU", cnn: "CNN", ci: "CI", url: "URL", dicom: "DICOM", png: "PNG", tflite: "TFLite", ms: "ms" };
  const words = String(key).replace(/([a-z])([A-Z])/g, "$1 $2").split(/[_\s]+/).filter(Boolean)
    .map((w) => acronyms[w.toLowerCase()] || w.toLowerCase());
  if (!words.length) return "";
  words[0] = acronyms[words[0].toLowerCase()] || words[0].charAt(0).toUpperCase() + words[0].slice(1);
  return words.join(" ");
}

export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); reject(new DOMException("Aborted", "AbortError")); }, { once: true });
  });
}

/** Show a message box (role=alert element) with a kind: "error" | "warning" | "info" | "success". */
export function showMessage(el, kind, text, detail) {
  el.className = `alert alert-${kind}`;
  clear(el);
  el.append(h("strong", { text }));
  if (detail) el.append(h("span", { class: "alert-detail", text: detail }));
  el.hidden = false;
}

export function hideMessage(el) {
  el.hidden = true;
  clear(el);
}
