// The viewer: the displayed scan and the model input side by side, zoom, CT window presets and a
// heat-map overlay with an opacity slider, each only when the backend provides it.
"use strict";

import { h, clear } from "./dom.js";
import { humanize } from "./format.js";

/** Window previews ({windows: {brain: url}} or flat {window_brain: url} keys) in the order of the
 * served presets, each as {name, url, label, hint}; names the contract does not know come last. */
function windowsOf(previews, presets) {
  const urls = { ...(previews.windows || {}) };
  for (const [key, url] of Object.entries(previews)) {
    const m = /^window_(\w+)$/.exec(key);
    if (m) urls[m[1]] = url;
  }
  const rank = (name) => { const i = presets.findIndex((p) => p.name === name); return i < 0 ? presets.length : i; };
  return Object.entries(urls).filter(([, url]) => typeof url === "string")
    .sort(([a], [b]) => rank(a) - rank(b))
    .map(([name, url]) => {
      const preset = presets.find((p) => p.name === name);
      return { name, url, label: preset?.label || humanize(name), hint: preset ? `L${preset.level} / W${preset.width}` : "" };
    });
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

/** The server's heat-map PNG (the CAM upsampled to the model input, "hot" ramp, alpha = evidence),
 * drawn over the model input. It is decorative: the note under the viewer says what it shows. */
function heatOverlay(url, onExpired) {
  const img = h("img", { class: "overlay heatmap", src: url, alt: "", "aria-hidden": "true", decoding: "async", referrerpolicy: "no-referrer" });
  img.addEventListener("error", () => { if (!(onExpired && onExpired())) img.hidden = true; }, { once: true });
  return img;
}

function zoomTool(panes) {
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
  setZoom(1);
  return h("div", { class: "tool" },
    h("label", { for: "zoom", text: "Zoom" }),
    h("button", { type: "button", class: "btn btn-icon", "aria-label": "Zoom out", text: "−", onclick: () => setZoom(Number(zoom.value) - 0.5) }),
    zoom,
    h("button", { type: "button", class: "btn btn-icon", "aria-label": "Zoom in", text: "+", onclick: () => setZoom(Number(zoom.value) + 0.5) }),
    zoomValue);
}

/** CT window presets as a radio group; choosing one swaps the displayed image and its caption. */
function windowTool(displayPane, display, windows, expired) {
  const group = h("div", { class: "segmented", role: "radiogroup", "aria-labelledby": "win-label" });
  const choices = display ? [{ name: "display", url: display, label: "As displayed", hint: "" }, ...windows] : windows;
  choices.forEach((w, i) => {
    const id = `win-${w.name}`;
    const input = h("input", { type: "radio", name: "ct-window", id, value: w.name, checked: i === 0 });
    input.addEventListener("change", () => {
      const isWindow = w.name !== "display";
      const img = previewImage(w.url, `Uploaded slice, ${w.label.toLowerCase()}${isWindow ? " window" : ""}`, expired);
      displayPane.querySelector(".scan-img, .img-missing").replaceWith(img);
      displayPane.querySelector("figcaption .muted").textContent = isWindow
        ? `${w.label} window${w.hint ? ` · ${w.hint}` : ""}` : "as uploaded, de-identified";
    });
    group.append(input, h("label", { for: id, text: w.label, title: w.hint }));
  });
  return h("div", { class: "tool" }, h("span", { class: "tool-label", id: "win-label", text: "Window" }), group);
}

function heatTool(overlay) {
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
  return h("div", { class: "tool" },
    h("span", { class: "check" }, toggle, h("label", { for: "heat-toggle", text: "Heat map" })),
    h("label", { for: "heat-opacity", class: "visually-hidden", text: "Heat-map opacity" }), opacity, out);
}

function heatNote(heatmap) {
  return h("p", { class: "muted small heat-note" },
    h("span", { class: "heat-scale", "aria-hidden": "true" },
      h("span", { text: "low" }), h("span", { class: "heat-legend" }), h("span", { text: "high" })),
    h("span", { text: `Heat map${heatmap?.method ? ` (${heatmap.method})` : ""}: where the evidence for ` +
      `${heatmap?.class ? `“${heatmap.class}”` : "the model output"} was strongest. It is not a lesion outline.` }));
}

/** Render the viewer. ``onExpired()`` is called when a preview link fails (they expire after minutes);
 * it returns true when it will re-render with fresh links, else the image shows a placeholder.
 * ``presets`` are the served CT window presets ([{name, label, level, width}]). */
export function renderViewer(section, scan, { localUrl = null, onExpired = null, presets = [] } = {}) {
  clear(section);
  let refreshing = null; // asked once per render: true when fresh links are on their way
  const expired = onExpired ? () => (refreshing ??= Boolean(onExpired())) : null;
  const previews = scan.previews || {};
  const r = scan.result || {};
  const windows = r.modality === "MR" ? [] : windowsOf(previews, presets);
  const fromServer = Boolean(previews.display || windows.length);
  const displayUrl = previews.display || windows[0]?.url || localUrl;
  const modelUrl = previews.model_input || null;
  if (!displayUrl && !modelUrl) {
    section.hidden = scan.status !== "DONE";
    section.append(h("h2", { id: "viewer-h", text: "Viewer" }), h("p", { class: "muted", text: "No preview images are available for this scan." }));
    return;
  }
  section.hidden = false;
  const toolbar = h("div", { class: "toolbar", role: "toolbar", "aria-label": "Viewer controls" });
  const panes = h("div", { class: "panes" });
  section.append(h("div", { class: "viewer-head" }, h("h2", { id: "viewer-h", text: "Viewer" })), toolbar, panes);

  const displayImg = previewImage(displayUrl, fromServer ? "Uploaded slice as displayed" : "Your file (local preview)", expired);
  const displayCaption = !fromServer ? "local preview, from your computer"
    : previews.display ? "as uploaded, de-identified" : `${windows[0].label} window`;
  const displayPane = pane("Displayed scan", displayCaption, displayImg);
  panes.append(displayPane);
  const overlay = modelUrl && typeof previews.heatmap === "string" ? heatOverlay(previews.heatmap, expired) : null;
  if (modelUrl) {
    panes.append(pane("Model input", "what the model saw", previewImage(modelUrl, "Model input: the slice after windowing, padding and resizing", expired), overlay));
  }

  toolbar.append(zoomTool(panes));
  if (windows.length) toolbar.append(windowTool(displayPane, previews.display, windows, expired));
  if (overlay) {
    toolbar.append(heatTool(overlay));
    section.append(heatNote(r.heatmap));
  }
  if (!fromServer && localUrl) {
    section.append(h("p", { class: "muted small", text: "Server previews are not available for this scan; the left panel shows the file from your computer." }));
  }
}
