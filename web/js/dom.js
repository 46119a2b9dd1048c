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
