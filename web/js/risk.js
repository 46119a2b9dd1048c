// Clinical risk form: tabular risk factors -> model probability, band and contributing factors.
"use strict";

import { $, h, add, clear } from "./dom.js";
import { formatPercent, humanize } from "./format.js";

/** One control per contract field (``risk_form``): number -> input with range and unit, flag -> Yes/No
 * radios (sent as numbers), choice -> select. Errors and hints are wired with aria-describedby. */
function fieldControl(f) {
  const id = `risk-${f.name}`;
  const errId = `${id}-error`;
  if (f.type === "flag") return flagControl(f, id, errId);
  const hintId = f.hint ? `${id}-hint` : null;
  const describedBy = [f.unit ? `${id}-unit` : null, hintId, errId].filter(Boolean).join(" ");
  const input = f.type === "choice"
    ? h("select", { id, name: f.name, required: f.required, "aria-describedby": describedBy },
      h("option", { value: "", text: "Choose…" }), (f.options || []).map(([value, text]) => h("option", { value, text })))
    : h("input", { id, name: f.name, type: "number", inputmode: "decimal", min: f.min, max: f.max, step: "any", required: f.required, "aria-describedby": describedBy });
  return h("div", { class: "field" },
    h("label", { for: id, text: f.label + (f.required ? "" : " (optional)") }),
    f.unit ? h("div", { class: "with-unit" }, input, h("span", { class: "unit", id: `${id}-unit`, text: f.unit })) : input,
    hintId ? h("p", { class: "hint", id: hintId, text: f.hint }) : null,
    h("p", { class: "field-error", id: errId, "aria-live": "polite" }));
}

function flagControl(f, id, errId) {
  // "No" (0) is preselected: a risk factor is absent unless the clinician says otherwise.
  return h("fieldset", { class: "field radio-field", id, "aria-describedby": errId },
    h("legend", { text: f.label }),
    h("div", { class: "radio-row" }, (f.options || []).map(([value, text], i) => h("span", { class: "radio" },
      h("input", { type: "radio", name: f.name, id: `${id}-${value}`, value, required: f.required && i === 0, checked: Number(value) === 0 }),
      h("label", { for: `${id}-${value}`, text })))),
    h("p", { class: "field-error", id: errId, "aria-live": "polite" }));
}

/** The request body: numbers and flags as numbers, an empty answer as null. */
function readForm(form, fields) {
  const data = new FormData(form);
  const body = {};
  for (const f of fields) {
    const raw = data.get(f.name);
    body[f.name] = raw === null || raw === "" ? null : f.type === "choice" ? raw : Number(raw);
  }
  return body;
}

function setFieldError(form, name, message) {
  const el = form.querySelector(`#risk-${CSS.escape(name)}-error`);
  if (el) el.textContent = message || "";
  const control = form.querySelector(`#risk-${CSS.escape(name)}`);
  if (control) {
    if (message) control.setAttribute("aria-invalid", "true"); else control.removeAttribute("aria-invalid");
  }
  return control;
}

function fieldMessage(form, f, control) {
  if (f.type === "flag") return f.required && !form.querySelector(`input[name="${CSS.escape(f.name)}"]:checked`) ? `Choose ${f.label.toLowerCase()}.` : "";
  if (control.validity.valueMissing) return `${f.label} is required.`;
  if (control.validity.badInput) return `${f.label} must be a number.`;
  if (control.validity.rangeUnderflow || control.validity.rangeOverflow) return `${f.label} must be between ${f.min} and ${f.max}${f.unit ? " " + f.unit : ""}.`;
  return "";
}

/** Mark every invalid field; returns the first invalid control (to focus), or null. */
function validate(form, fields) {
  let first = null;
  for (const f of fields) {
    const control = form.querySelector(`#risk-${CSS.escape(f.name)}`);
    const message = fieldMessage(form, f, control);
    setFieldError(form, f.name, message);
    if (message && !first) first = control.matches("fieldset") ? control.querySelector("input") : control;
  }
  return first;
}

function contributionRow(c, maxAbs, field) {
  const share = maxAbs ? Math.abs(Number(c.contribution)) / maxAbs : 0;
  const dir = ["raises", "lowers", "neutral"].includes(c.direction) ? c.direction
    : Number(c.contribution) > 0 ? "raises" : Number(c.contribution) < 0 ? "lowers" : "neutral";
  const flag = field?.type === "flag";
  const value = c.value === null || c.value === undefined ? "unknown" : flag ? (Number(c.value) ? "yes" : "no") : String(c.value);
  const bar = h("span", { class: "contrib-bar", style: { width: `${(100 * share).toFixed(1)}%` } });
  return h("li", { class: `contrib ${dir}`, dataset: { feature: c.feature } },
    h("span", { class: "contrib-name" }, h("strong", { text: field?.label || humanize(c.feature) }),
      h("span", { class: "muted", text: ` = ${value}${c.imputed ? " (imputed)" : ""}` })),
    h("span", { class: "contrib-track", "aria-hidden": "true" },
      h("span", { class: "contrib-half left" }, dir === "lowers" ? bar : null),
      h("span", { class: "contrib-half right" }, dir === "raises" ? bar : null)),
    h("span", { class: "contrib-dir", text: dir === "neutral" ? "no effect" : dir }));
}

/** The bands as a segmented scale, the current one highlighted. */
function bandScale(bands, current) {
  if (!Array.isArray(bands) || bands.length < 2) return null;
  let lower = 0;
  return h("ol", { class: "band-scale", "aria-label": "Risk bands" }, bands.map((b) => {
    const pct = (p) => `${Number((100 * p).toFixed(1))} %`;
    const range = b.upper === null || b.upper === undefined ? `≥ ${pct(lower)}` : `${pct(lower)}–${pct(b.upper)}`;
    lower = b.upper ?? lower;
    const isCurrent = b.name === current;
    return h("li", { class: `band-seg band-${String(b.name).toLowerCase().replace(/[^a-z]+/g, "-")}${isCurrent ? " current" : ""}`,
      "aria-current": isCurrent ? "true" : null, title: b.meaning || "" },
    h("span", { class: "band-name", text: humanize(b.name) }), h("span", { class: "band-range", text: range }));
  }));
}

export class RiskView {
  constructor(api, contract) {
    this.api = api;
    this.contract = contract;
    this.form = null;
    this.fields = []; // the contract's risk_form the form was built from
  }

  _label(name) {
    return this.fields.find((f) => f.name === name)?.label || humanize(name);
  }

  _build(fields) {
    this.fields = fields;
    const form = h("form", { id: "risk-form", class: "risk-form", novalidate: true },
      h("div", { class: "form-grid" }, fields.map(fieldControl)),
      h("div", { class: "form-actions" },
        h("button", { type: "submit", class: "btn btn-primary", text: "Estimate risk" }),
        h("button", { type: "reset", class: "btn btn-quiet", text: "Clear" })),
      h("div", { id: "risk-msg", class: "alert", role: "alert", hidden: true }));
    form.addEventListener("submit", (e) => { e.preventDefault(); this.submit(); });
    form.addEventListener("reset", () => {
      $("risk-result").hidden = true;
      fields.forEach((f) => setFieldError(form, f.name, ""));
    });
    clear($("risk-form-host")).append(form);
    this.form = form;
  }

  /** The fields come from the served contract; without it there is no form, only a retry. */
  async _ensureForm() {
    if (this.form) return;
    const host = clear($("risk-form-host"));
    host.append(h("p", { class: "muted", role: "status", text: "Loading the form…" }));
    try {
      const contract = await this.contract.load();
      if (!this.form) this._build(contract.risk_form || []);
    } catch (err) {
      const retry = h("button", { type: "button", class: "btn btn-secondary btn-small", text: "Try again", onclick: () => this._ensureForm() });
      clear(host).append(h("div", { class: "alert alert-error", role: "alert" },
        h("strong", { text: "The risk form could not be loaded." }), h("span", { class: "alert-detail", text: err.message }), retry));
    }
  }

  show(params) {
    this._ensureForm();
    const scan = params.get("scan");
    $("risk-back").hidden = !scan;
    if (scan) $("risk-back").querySelector("a").setAttribute("href", `#/scan/${encodeURIComponent(scan)}`);
  }

  async submit() {
    const form = this.form;
    const msg = $("risk-msg");
    msg.hidden = true;
    const invalid = validate(form, this.fields);
    if (invalid) { invalid.focus(); return; }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    button.textContent = "Estimating…";
    try {
      const result = await this.api.post("/risk", readForm(form, this.fields));
      this.render(result);
    } catch (err) {
      msg.className = "alert alert-error";
      clear(msg);
      if (err.code === "INVALID_FIELD" && err.field) {
        const control = setFieldError(form, err.field, err.message);
        msg.append(h("strong", { text: `Check “${this._label(err.field)}”. ` }), h("span", { text: err.message }));
        msg.hidden = false;
        (control?.matches("fieldset") ? control.querySelector("input") : control)?.focus();
      } else {
        msg.append(h("strong", { text: err.status === 404 ? "The clinical risk service is not available on this deployment yet." : "The estimate could not be computed." }),
          h("span", { class: "alert-detail", text: err.status === 404 ? "Please try again later." : err.message }));
        msg.hidden = false;
      }
    } finally {
      button.disabled = false;
      button.textContent = "Estimate risk";
    }
  }

  render(result) {
    const box = $("risk-result");
    clear(box);
    const contributions = [...(result.contributions || [])].sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution));
    const maxAbs = Math.max(0, ...contributions.map((c) => Math.abs(Number(c.contribution)) || 0));
    const band = String(result.band || "");
    const bandInfo = (result.bands || []).find((b) => b.name === band);
    const baseline = result.baseline && typeof result.baseline.probability === "number" ? result.baseline : null;
    add(box,
      h("h2", { id: "risk-result-h", tabindex: "-1", text: "Model output" }),
      h("p", { class: "result-kicker", text: "Model output · not a diagnosis · not for clinical decisions" }),
      h("div", { class: "risk-summary" },
        h("div", { class: "risk-prob" },
          h("span", { class: "risk-prob-value", id: "risk-probability", dataset: { probability: String(result.probability) }, text: formatPercent(result.probability) }),
          h("span", { class: "muted small", text: "estimated probability of stroke (model output)" })),
        band ? h("div", { class: "risk-band" },
          h("span", { class: `badge badge-band band-${band.toLowerCase().replace(/[^a-z]+/g, "-")}`, id: "risk-band", text: `${humanize(band)} band` }),
          bandInfo?.meaning ? h("span", { class: "muted small", text: bandInfo.meaning }) : null) : null),
      bandScale(result.bands, band),
      baseline ? h("p", { class: "small", title: baseline.meaning || "" }, h("strong", { text: "Baseline: " }),
        `${formatPercent(baseline.probability)}, the model's estimate for an average patient in its training data.`) : null,
      contributions.length ? h("h3", { class: "sub-h", text: "Contributing factors" }) : null,
      contributions.length ? h("p", { class: "muted small", text: "How much each input moved this estimate up or down, relative to the baseline." }) : null,
      contributions.length ? h("ul", { class: "contribs", "aria-label": "Contributing factors" }, contributions.map((c) => contributionRow(c, maxAbs, this.fields.find((f) => f.name === c.feature)))) : null,
      result.contribution_method ? h("details", { class: "result-details" }, h("summary", { text: "How contributions are computed" }),
        h("p", { class: "small mono", text: result.contribution_method }),
        baseline?.meaning ? h("p", { class: "small mono", text: `Baseline: ${baseline.meaning}` }) : null) : null,
      (result.notes || []).length ? h("div", { class: "alert alert-info", role: "note" }, h("strong", { text: "Notes" }), h("ul", {}, result.notes.map((n) => h("li", { text: n })))) : null,
      h("div", { class: "alert alert-warning", role: "note" }, h("strong", { text: "Research tool, not for diagnostic use." }),
        h("span", { class: "alert-detail", text: result.disclaimer || "A statistical estimate from population data, not a diagnosis for this patient." })),
      h("p", { class: "muted small" }, "Model version ", h("span", { class: "mono", text: result.model_version || "–" })));
    box.hidden = false;
    box.querySelector("h2").focus();
  }

  reset() {
    this.form?.remove(); // rebuilt from the contract fetched at the next sign-in
    this.form = null;
    $("risk-result").hidden = true;
  }
}
