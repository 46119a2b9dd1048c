// The viewer: the displayed scan and the model input side by side, zoom, CT window presets and a
// heat-map overlay with an opacity slider, each only when the backend provides it.
"use strict";

import { h, clear } from "./dom.js";
import { humanize } from "./format.js";

const WINDOW_ORDER = ["brain", "subdural", "stroke", "bone"];
const WINDOW_HINT = { brain: "L40 / W80", subdural: "L75 / W215", stroke: "L40 / W40", bone: "L600 / W2800" };

/** Window previews from either {windows: {brain: url}} or flat {window_brain: url} keys. */
function windowsOf(previews) {
  const out = { ...(previews.windows || {}) };
  for (const [key, url] of Object.entries(previews)) {
    const m = /^window_(\w+)$/.exec(key);
    if (m && typeof url === "string") out[m[1]] = url;
  }
  return Object.entries(out).filter(([, url]) => typeof url === "string")
    .sort((a, b) => (WINDOW_ORDER.indexOf(a[0]) + 99) % 99 - (WINDOW_ORDER.indexOf(b[0]) + 99) % 99);
}

/** Viridis-like ramp; low values are transparent so the anatomy stays readable. */
function heatColor(t) {
  const stops = [[0, [48, 18, 59]], [0.25, [40, 120, 230]], [0.5, [40, 200, 140]], [0.75, [250, 200, 40]], [1, [220, 40, 20]]];
  let i = 1;
  while (i < stops.length - 1 && t > stops[i][0]) i++;
  const [t0, c0] = stops[i - 1];
  const [t1, c1] = stops[i];
  const f = Math.max(0, Math.min(1, (t - t0) / (t1 - t0 || 1)));
  return c0.map((c, k) => Math.round(c + f * (c1[k] - c)));
}

function heatmapCanvas(grid) {
  const rows = grid.length;
  const cols = Math.max(...grid.map((r) => r.length));
  const values = grid.flat().map(Number).filter(Number.isFinite);
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const canvas = h("canvas", { class: "overlay heatmap", width: cols, height: rows, "aria-hidden": "true" });
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(cols, rows);
  grid.forEach((row, y) => row.forEach((v, x) => {
    const t = hi > lo ? (Number(v) - lo) / (hi - lo) : 0;
    const [r, g, b] = heatColor(t);
    const o = 4 * (y * cols + x);
    img.data.set([r, g, b, Math.round(255 * Math.min(1, t * 1.4))], o);
  }));
  ctx.putImageData(img, 0, 0);
  return canvas;
}

function pane(title, caption, image, overlay) {
  const stage = h("div", { class: "stage" }, image, overlay);
  const scroller = h("div", { class: "pane-scroll", tabindex: "0", role: "group", "aria-label": `${title} (scroll to pan when zoomed)` }, stage);
  return h("figure", { class: "pane" }, h("figcaption", {}, h("span", { class: "pane-title", text: title }), caption ? h("span", { class: "muted small", text: caption }) : null), scroller);
}

function previewImage(url, alt, onExpired) {
  const img = h("img", { src: url, alt, class: "scan-img", decoding: "async", referrerpolicy: "no-referrer" });
  img.addEventListener("error", () => {
    if (onExpired && onExpired()) return; // short-lived links: the scan is fetched again with fresh ones
    const ph = h("div", { class: "img-missing", role: "img", "aria-label": `${alt}: not available` },
      h("span", { text: "Preview not available" }), h("span", { class: "small", text: "The link may have expired: reopen the scan." }));
    img.replaceWith(ph);
  }, { once: true });
  return img;
}

/** Render the viewer. ``onExpired()`` is called when a preview link fails (they expire after minutes);
 * it returns true when it will re-render with fresh links, else the image shows a placeholder. */
export function renderViewer(section, scan, localUrl, onExpired) {
  clear(section);
  let refreshing = null; // asked once per render: true when fresh links are on their way
  const expired = onExpired ? () => (refreshing ??= Boolean(onExpired())) : null;
  const previews = scan.previews || {};
  const r = scan.result || {};
  const windows = r.modality === "MR" ? [] : windowsOf(previews);
  const heatGrid = Array.isArray(r.heatmap?.grid) && r.heatmap.grid.length ? r.heatmap.grid : null;
  const heatUrl = typeof previews.heatmap === "string" ? previews.heatmap : null;
  const displayUrl = previews.display || (windows.length ? windows[0][1] : null) || localUrl;
  const modelUrl = previews.model_input || null;
  if (!displayUrl && !modelUrl) {
    section.hidden = scan.status !== "DONE";
    section.append(h("h2", { id: "viewer-h", text: "Viewer" }), h("p", { class: "muted", text: "No preview images are available for this scan." }));
    return;
  }
  section.hidden = false;
  const head = h("div", { class: "viewer-head" }, h("h2", { id: "viewer-h", text: "Viewer" }));
  const toolbar = h("div", { class: "toolbar", role: "toolbar", "aria-label": "Viewer controls" });
  const panes = h("div", { class: "panes" });
  section.append(head, toolbar, panes);

  // Panels
  const displayImg = previewImage(displayUrl, previews.display || windows.length ? "Uploaded slice as displayed" : "Your file (local preview)", expired);
  const displayCaption = previews.display || windows.length ? (windows.length && !previews.display ? `${humanize(windows[0][0])} window` : "as uploaded, de-identified")
    : "local preview, from your computer";
  const displayPane = pane("Displayed scan", displayCaption, displayImg);
  panes.append(displayPane);
  let overlay = null;
  if (modelUrl) {
    if (heatUrl) overlay = h("img", { class: "overlay heatmap", src: heatUrl, alt: "", "aria-hidden": "true" });
    else if (heatGrid) overlay = heatmapCanvas(heatGrid);
    panes.append(pane("Model input", "what the model saw", previewImage(modelUrl, "Model input: the slice after windowing, padding and resizing", expired), overlay));
  }

  // Zoom (both panes together)
  const zoomValue = h("output", { class: "zoom-value", for: "zoom", text: "1×" });
  const zoom = h("input", { id: "zoom", type: "range", min: "1", max: "4", step: "0.25", value: "1", "aria-valuetext": "1 times" });
  const setZoom = (z) => {
    z = Math.max(1, Math.min(4, z));
    zoom.value = String(z);
    zoomValue.textContent = `${z}×`;
    zoom.setAttribute("aria-valuetext", `${z} times`);
    panes.style.setProperty("--zoom", String(z));
    panes.classList.toggle("zoomed", z > 1);
  };
  zoom.addEventListener("input", () => setZoom(Number(zoom.value)));
  toolbar.append(h("div", { class: "tool" },
    h("label", { for: "zoom", text: "Zoom" }),
    h("button", { type: "button", class: "btn btn-icon", "aria-label": "Zoom out", text: "−", onclick: () => setZoom(Number(zoom.value) - 0.5) }),
    zoom,
    h("button", { type: "button", class: "btn btn-icon", "aria-label": "Zoom in", text: "+", onclick: () => setZoom(Number(zoom.value) + 0.5) }),
    zoomValue));

  // CT window presets
  if (windows.length) {
    const group = h("div", { class: "segmented", role: "radiogroup", "aria-label": "CT window preset" });
    const choices = [];
    if (previews.display) choices.push(["display", previews.display, "As displayed"]);
    for (const [name, url] of windows) choices.push([name, url, humanize(name)]);
    choices.forEach(([name, url, text], i) => {
      const id = `win-${name}`;
      const input = h("input", { type: "radio", name: "ct-window", id, value: name, checked: i === 0 });
      input.addEventListener("change", () => {
        const current = displayPane.querySelector(".scan-img, .img-missing");
        const img = previewImage(url, `Uploaded slice, ${text.toLowerCase()}${name !== "display" ? " window" : ""}`, expired);
        current.replaceWith(img);
        displayPane.querySelector("figcaption .muted").textContent = WINDOW_HINT[name] ? `${text} window · ${WINDOW_HINT[name]}` : "as uploaded, de-identified";
      });
      group.append(input, h("label", { for: id, text, title: WINDOW_HINT[name] || "" }));
    });
    toolbar.append(h("div", { class: "tool" }, h("span", { class: "tool-label", id: "win-label", text: "Window" }), group));
    group.setAttribute("aria-labelledby", "win-label");
  }

  // Heat-map overlay
  if (overlay) {
    const opacity = h("input", { id: "heat-opacity", type: "range", min: "0", max: "100", step: "5", value: "50" });
    const out = h("output", { for: "heat-opacity", class: "zoom-value", text: "50 %" });
    const toggle = h("input", { id: "heat-toggle", type: "checkbox", checked: true });
    const apply = () => {
      overlay.style.opacity = toggle.checked ? String(Number(opacity.value) / 100) : "0";
      out.textContent = `${opacity.value} %`;
      opacity.disabled = !toggle.checked;
    };
    opacity.addEventListener("input", apply);
    toggle.addEventListener("change", apply);
    apply();
    toolbar.append(h("div", { class: "tool" },
      h("span", { class: "check" }, toggle, h("label", { for: "heat-toggle", text: "Heat map" })),
      h("label", { for: "heat-opacity", class: "visually-hidden", text: "Heat-map opacity" }), opacity, out));
    section.append(h("p", { class: "muted small heat-note" },
      h("span", { class: "heat-legend", "aria-hidden": "true" }),
      `Heat map${r.heatmap?.method ? ` (${r.heatmap.method})` : ""}: where the model output was most sensitive. It is not a lesion outline.`));
  }
  if (!previews.display && !windows.length && localUrl) {
    section.append(h("p", { class: "muted small", text: "Server previews are not available for this scan; the left panel shows the file from your computer." }));
  }
  setZoom(1);
}
