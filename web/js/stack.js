// The stack viewer: one slice at a time, moved by the mouse wheel, a slider, the arrow keys or the
// per-slice score strip. Each slice's previews are fetched on demand (GET /studies/{id}?slice=N)
// and their short-lived links cached until shortly before they expire. Key slices also have window
// presets and the model input; every assessed slice has the server's heat-map PNG.
"use strict";

import { h, clear } from "./dom.js";
import { formatPercent, humanize } from "./format.js";

const LINK_TTL_MS = 4 * 60_000; // preview links live 5 minutes: refetch a little before
const WHEEL_STEP = 100; // pixels of wheel travel per slice (a mouse notch is about 100)
const STEP_KEYS = { ArrowUp: -1, ArrowLeft: -1, ArrowDown: 1, ArrowRight: 1, PageUp: -10, PageDown: 10 };

/** The image choices a slice's previews offer, in the served presets' order: [{name, url, label}]. */
function choicesOf(links, presets) {
  const out = [];
  if (links.display) out.push({ name: "display", url: links.display, label: "As displayed" });
  for (const p of presets) if (links[`window_${p.name}`]) out.push({ name: p.name, url: links[`window_${p.name}`], label: p.label, hint: `L${p.level} / W${p.width}` });
  for (const [key, url] of Object.entries(links)) {
    const m = /^window_(\w+)$/.exec(key);
    if (m && !presets.some((p) => p.name === m[1])) out.push({ name: m[1], url, label: humanize(m[1]) });
  }
  if (links.model_input) out.push({ name: "model_input", url: links.model_input, label: "Model input" });
  return out;
}

/** The strip of per-slice scores: one bar per stack position (null: not assessable), click to jump. */
function scoreStrip(scores, go) {
  const strip = h("div", { class: "score-strip", id: "score-strip", role: "group", "aria-label": "Model score per slice: choose a slice to show it" });
  scores.forEach((score, pos) => {
    const na = score === null || score === undefined;
    const text = `Slice ${pos + 1}: ${na ? "not assessable" : `model score ${formatPercent(score)}`}`;
    strip.append(h("button", { type: "button", class: `score-bar${na ? " na" : ""}`, tabindex: "-1", title: text, "aria-label": text,
      dataset: { position: String(pos), score: na ? "na" : String(score) }, onclick: () => go(pos) },
    h("span", { class: "score-fill", style: { height: na ? "100%" : `${Math.max(4, 100 * score).toFixed(1)}%` } })));
  });
  return strip;
}

export class StackViewer {
  constructor(section, api, contract) {
    this.section = section;
    this.api = api;
    this.contract = contract;
    this.study = null;
    this.position = 0;
    this.links = new Map(); // position -> {links, at} | {pending}
    this.choice = "display";
    this.retried = new Set(); // positions whose links were fetched again after an image failed
  }

  get size() { return this.study?.result?.stack?.length || 0; }

  /** Build the viewer for a final study and show ``position`` (the top key slice by default). */
  open(study, position) {
    this.study = study;
    this.links.clear();
    this.retried.clear();
    const r = study.result || {};
    const at = Date.now();
    for (const [pos, links] of Object.entries(study.key_slice_previews || {})) this.links.set(Number(pos), { links, at });
    clear(this.section);
    if (!this.size) { this.section.hidden = true; return; }
    this.section.hidden = false;
    const n = this.size;
    this.slider = h("input", { id: "slice-slider", type: "range", min: "0", max: String(n - 1), step: "1", value: "0", "aria-label": "Slice position in the stack" });
    this.slider.addEventListener("input", () => this.go(Number(this.slider.value)));
    this.label = h("output", { id: "slice-label", for: "slice-slider", "aria-live": "polite" });
    this.img = h("img", { id: "stack-img", class: "scan-img", alt: "", referrerpolicy: "no-referrer", decoding: "async" });
    this.img.addEventListener("error", () => this._expired());
    this.heat = h("img", { class: "overlay heatmap", alt: "", "aria-hidden": "true", referrerpolicy: "no-referrer", hidden: true });
    this.heat.addEventListener("error", () => { this.heat.hidden = true; });
    this.stage = h("div", { class: "stage stack-stage", id: "stack-stage", tabindex: "0", role: "group",
      "aria-label": "Slice image: mouse wheel or arrow keys move through the stack, Home and End go to the ends" }, this.img, this.heat);
    this.stage.addEventListener("wheel", (e) => this._wheel(e), { passive: false });
    this.stage.addEventListener("keydown", (e) => this._key(e));
    this.strip = scoreStrip(r.scores || [], (pos) => this.go(pos, true));
    this.strip.addEventListener("keydown", (e) => this._key(e, true));
    this.tools = h("div", { class: "stack-tools" });
    this.caption = h("p", { class: "muted small", id: "stack-caption" });
    this.section.append(
      h("div", { class: "viewer-head" }, h("h2", { id: "stack-h", text: "Stack viewer" })),
      h("div", { class: "toolbar stack-nav", role: "toolbar", "aria-label": "Stack controls" },
        h("button", { type: "button", class: "btn btn-icon", "aria-label": "Previous slice", text: "‹", onclick: () => this.go(this.position - 1) }),
        this.slider,
        h("button", { type: "button", class: "btn btn-icon", "aria-label": "Next slice", text: "›", onclick: () => this.go(this.position + 1) }),
        this.label),
      this.strip,
      h("p", { class: "muted small strip-legend", text: "Bars: the model’s score for each slice, the first slice of the stack on the left; hatched: not assessable or unreadable." }),
      h("figure", { class: "pane stack-pane" }, this.stage, this.caption),
      this.tools,
      h("p", { class: "muted small heat-note", text: "Heat map: where the evidence for the model output was strongest, in the model input's frame " +
        "(exact over “Model input”; over the displayed slice it is approximate when the slice is not square). It is not a lesion outline." }));
    this.go(position ?? r.key_slices?.[0] ?? 0);
  }

  /** A mouse notch is one slice; a touchpad's many small deltas add up to one slice per WHEEL_STEP. */
  _wheel(e) {
    e.preventDefault();
    const px = e.deltaMode === WheelEvent.DOM_DELTA_PIXEL ? e.deltaY : e.deltaY * WHEEL_STEP;
    this.wheelSum = (this.wheelSum || 0) + px;
    const steps = Math.trunc(this.wheelSum / WHEEL_STEP) || (Math.abs(px) >= WHEEL_STEP / 2 ? Math.sign(px) : 0);
    if (!steps) return;
    this.wheelSum = 0;
    this.go(this.position + steps);
  }

  _key(e, strip = false) {
    const step = STEP_KEYS[e.key];
    let target = step === undefined ? null : this.position + step;
    if (e.key === "Home") target = 0;
    if (e.key === "End") target = this.size - 1;
    if (target === null) return;
    e.preventDefault();
    this.go(target, strip);
  }

  /** Show stack position ``pos`` (clamped); ``focusStrip`` keeps keyboard focus on the strip. */
  go(pos, focusStrip = false) {
    if (!this.size) return;
    pos = Math.max(0, Math.min(this.size - 1, Math.round(pos)));
    this.position = pos;
    const score = this.study.result.scores?.[pos];
    this.slider.value = String(pos);
    this.slider.setAttribute("aria-valuetext", `Slice ${pos + 1} of ${this.size}`);
    this.label.textContent = `Slice ${pos + 1} of ${this.size} · ${score === null || score === undefined ? "not assessable" : `model score ${formatPercent(score)}`}`;
    this.section.dataset.position = String(pos);
    for (const bar of this.strip.children) {
      const current = Number(bar.dataset.position) === pos;
      bar.classList.toggle("current", current);
      bar.tabIndex = current ? 0 : -1; // one tab stop; arrows move along the strip
      if (current) bar.setAttribute("aria-current", "true"); else bar.removeAttribute("aria-current");
      if (current && focusStrip) bar.focus();
    }
    this._load(pos);
  }

  /** Links for ``pos``: cached while fresh, else one request (shared by concurrent callers). */
  _links(pos) {
    const cached = this.links.get(pos);
    if (cached?.links && Date.now() - cached.at < LINK_TTL_MS) return Promise.resolve(cached.links);
    if (cached?.pending) return cached.pending;
    const id = this.study.study_id;
    const pending = this.api.get(`/studies/${encodeURIComponent(id)}?slice=${pos}`)
      .then((view) => {
        const links = view.slice_previews?.[pos] || {};
        this.links.set(pos, { links, at: Date.now() });
        return links;
      }, (err) => { this.links.delete(pos); throw err; });
    this.links.set(pos, { pending });
    return pending;
  }

  async _load(pos) {
    let links;
    try {
      links = await this._links(pos);
    } catch (err) {
      if (pos === this.position) this._missing(`The slice could not be loaded: ${err.message}`);
      return;
    }
    if (pos !== this.position || this.study === null) return; // scrolled on meanwhile
    const choices = choicesOf(links, this.contract.windowPresets);
    if (!choices.some((c) => c.name === this.choice)) this.choice = "display";
    const shown = choices.find((c) => c.name === this.choice) || choices[0];
    if (!shown) { this._missing("No preview is available for this slice (it could not be read)."); return; }
    this.img.hidden = false;
    this.stage.querySelector(".img-missing")?.remove();
    this.img.src = shown.url;
    this.img.alt = `Slice ${pos + 1} of ${this.size}, ${shown.label.toLowerCase()}${shown.hint ? " window" : ""}`;
    this.img.dataset.position = String(pos);
    this.img.dataset.choice = shown.name;
    this.heat.hidden = !links.heatmap;
    if (links.heatmap) this.heat.src = links.heatmap;
    this.caption.textContent = `Slice ${pos + 1} of ${this.size} · ${shown.label}${shown.hint ? ` · ${shown.hint}` : ""}`;
    this._tools(choices, Boolean(links.heatmap));
  }

  _missing(text) {
    this.img.hidden = true;
    this.heat.hidden = true;
    this.stage.querySelector(".img-missing")?.remove();
    this.stage.append(h("div", { class: "img-missing", role: "img", "aria-label": text }, h("span", { text })));
  }

  /** A preview link failed (expired): forget the slice's links and load it again, once. */
  _expired() {
    const pos = Number(this.img.dataset.position);
    if (this.retried.has(pos)) { this._missing("Preview not available: reopen the study."); return; }
    this.retried.add(pos);
    this.links.delete(pos);
    if (pos === this.position) this._load(pos);
  }

  /** Window presets (when the slice has them) and the heat-map controls. */
  _tools(choices, heat) {
    const focused = this.tools.contains(document.activeElement) ? document.activeElement.id : null; // kept across the rebuild
    const tools = clear(this.tools);
    if (choices.length > 1) {
      const group = h("div", { class: "segmented", role: "radiogroup", "aria-labelledby": "stack-win-label" });
      for (const c of choices) {
        const id = `stack-win-${c.name}`;
        const input = h("input", { type: "radio", name: "stack-window", id, value: c.name, checked: c.name === this.choice });
        input.addEventListener("change", () => { this.choice = c.name; this._load(this.position); });
        group.append(input, h("label", { for: id, text: c.label, title: c.hint || "" }));
      }
      tools.append(h("div", { class: "tool" }, h("span", { class: "tool-label", id: "stack-win-label", text: "Image" }), group));
    }
    if (heat) {
      const opacity = h("input", { id: "stack-heat-opacity", type: "range", min: "0", max: "100", step: "5", value: this.heatOpacity ?? "50" });
      const toggle = h("input", { id: "stack-heat-toggle", type: "checkbox", checked: this.heatOn ?? true });
      const apply = () => {
        this.heatOpacity = opacity.value;
        this.heatOn = toggle.checked;
        this.heat.style.opacity = toggle.checked ? String(Number(opacity.value) / 100) : "0";
        opacity.disabled = !toggle.checked;
      };
      opacity.addEventListener("input", apply);
      toggle.addEventListener("change", apply);
      apply();
      tools.append(h("div", { class: "tool" }, h("span", { class: "check" }, toggle, h("label", { for: "stack-heat-toggle", text: "Heat map" })),
        h("label", { for: "stack-heat-opacity", class: "visually-hidden", text: "Heat-map opacity" }), opacity));
    }
    if (focused) tools.querySelector(`#${CSS.escape(focused)}`)?.focus();
  }

  close() {
    this.study = null;
    this.links.clear();
    this.retried.clear();
    clear(this.section);
    this.section.hidden = true;
  }
}
