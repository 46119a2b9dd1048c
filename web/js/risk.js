// Clinical risk form: tabular risk factors -> model probability, band and contributing factors.
"use strict";

import { $, h, add, clear } from "./dom.js";
import { formatPercent, humanize } from "./format.js";

const YES_NO = [["1", "Yes"], ["0", "No"]];
const FIELDS = [
  { name: "age", label: "Age", type: "number", min: 0, max: 120, step: "any", unit: "years", required: true },
  { name: "gender", label: "Sex", type: "select", options: [["Female", "Female"], ["Male", "Male"], ["Other", "Other"]], required: true },
  { name: "hypertension", label: "Hypertension", type: "radio", options: YES_NO, cast: Number, required: true },
  { name: "heart_disease", label: "Heart disease", type: "radio", options: YES_NO, cast: Number, required: true },
  { name: "avg_glucose_level", label: "Average glucose level", type: "number", min: 40, max: 400, step: "any", unit: "mg/dL", required: true },
  { name: "bmi", label: "BMI", type: "number", min: 10, max: 100, step: "any", unit: "kg/m²", hint: "Leave blank if unknown." },
  { name: "smoking_status", label: "Smoking", type: "select", required: true,
    options: [["never smoked", "Never smoked"], ["formerly smoked", "Formerly smoked"], ["smokes", "Smokes"], ["Unknown", "Unknown"]] },
  { name: "ever_married", label: "Ever married", type: "select", options: [["Yes", "Yes"], ["No", "No"]], required: true },
  { name: "work_type", label: "Work type", type: "select", required: true,
    options: [["Private", "Private sector"], ["Self-employed", "Self-employed"], ["Govt_job", "Government job"], ["children", "Child"], ["Never_worked", "Never worked"]] },
  { name: "Residence_type", label: "Residence", type: "select", options: [["Urban", "Urban"], ["Rural", "Rural"]], required: true },
];
const LABELS = Object.fromEntries(FIELDS.map((f) => [f.name, f.label]));

function fieldControl(f) {
  const id = `risk-${f.name}`;
  const errId = `${id}-error`;
  const hintId = f.hint ? `${id}-hint` : null;
  const describedBy = [f.unit ? `${id}-unit` : null, hintId, errId].filter(Boolean).join(" ");
  let control;
  if (f.type === "radio") {
    control = h("fieldset", { class: "field radio-field", id, "aria-describedby": errId },
      h("legend", { text: f.label }),
      h("div", { class: "radio-row" }, f.options.map(([value, text], i) => h("span", { class: "radio" },
        h("input", { type: "radio", name: f.name, id: `${id}-${value}`, value, required: f.required && i === 0, checked: value === "0" }),
        h("label", { for: `${id}-${value}`, text })))),
      h("p", { class: "field-error", id: errId, "aria-live": "polite" }));
    return control;
  }
  const input = f.type === "select"
    ? h("select", { id, name: f.name, required: f.required, "aria-describedby": describedBy },
      h("option", { value: "", text: "Choose…" }), f.options.map(([value, text]) => h("option", { value, text })))
    : h("input", { id, name: f.name, type: "number", inputmode: "decimal", min: f.min, max: f.max, step: f.step, required: f.required, "aria-describedby": describedBy });
  return h("div", { class: "field" },
    h("label", { for: id, text: f.label + (f.required ? "" : " (optional)") }),
    f.unit ? h("div", { class: "with-unit" }, input, h("span", { class: "unit", id: `${id}-unit`, text: f.unit })) : input,
    hintId ? h("p", { class: "hint", id: hintId, text: f.hint }) : null,
    h("p", { class: "field-error", id: errId, "aria-live": "polite" }));
}

function readForm(form) {
  const data = new FormData(form);
  const body = {};
  for (const f of FIELDS) {
    const raw = data.get(f.name);
    if (f.type === "number") body[f.name] = raw === null || raw === "" ? null : Number(raw);
    else body[f.name] = f.cast ? f.cast(raw) : raw;
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

function validate(form) {
  let first = null;
  for (const f of FIELDS) {
    const control = form.querySelector(`#risk-${f.name}`);
    let message = "";
    if (f.type === "radio") {
      if (f.required && !form.querySelector(`input[name="${f.name}"]:checked`)) message = `Choose ${f.label.toLowerCase()}.`;
    } else if (control.validity.valueMissing) message = `${f.label} is required.`;
    else if (control.validity.badInput) message = `${f.label} must be a number.`;
    else if (control.validity.rangeUnderflow || control.validity.rangeOverflow) message = `${f.label} must be between ${f.min} and ${f.max}${f.unit ? " " + f.unit : ""}.`;
    setFieldError(form, f.name, message);
    if (message && !first) first = control.matches("fieldset") ? control.querySelector("input") : control;
  }
  return first;
}

function contributionRow(c, maxAbs) {
  const share = maxAbs ? Math.abs(Number(c.contribution)) / maxAbs : 0;
  const dir = ["raises", "lowers", "neutral"].includes(c.direction) ? c.direction
    : Number(c.contribution) > 0 ? "raises" : Number(c.contribution) < 0 ? "lowers" : "neutral";
  const flag = FIELDS.find((f) => f.name === c.feature)?.cast === Number;
  const value = c.value === null || c.value === undefined ? "unknown" : flag ? (Number(c.value) ? "yes" : "no") : String(c.value);
  const bar = h("span", { class: "contrib-bar", style: { width: `${(100 * share).toFixed(1)}%` } });
  return h("li", { class: `contrib ${dir}`, dataset: { feature: c.feature } },
    h("span", { class: "contrib-name" }, h("strong", { text: LABELS[c.feature] || humanize(c.feature) }),
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
  constructor(api) {
    this.api = api;
    this.form = null;
  }

  _build() {
    const form = h("form", { id: "risk-form", class: "risk-form", novalidate: true },
      h("div", { class: "form-grid" }, FIELDS.map(fieldControl)),
      h("div", { class: "form-actions" },
        h("button", { type: "submit", class: "btn btn-primary", text: "Estimate risk" }),
        h("button", { type: "reset", class: "btn btn-quiet", text: "Clear" })),
      h("div", { id: "risk-msg", class: "alert", role: "alert", hidden: true }));
    form.addEventListener("submit", (e) => { e.preventDefault(); this.submit(); });
    form.addEventListener("reset", () => {
      $("risk-result").hidden = true;
      FIELDS.forEach((f) => setFieldError(form, f.name, ""));
    });
    $("risk-form-host").append(form);
    this.form = form;
  }

  show(params) {
    if (!this.form) this._build();
    const scan = params.get("scan");
    $("risk-back").hidden = !scan;
    if (scan) $("risk-back").querySelector("a").setAttribute("href", `#/scan/${encodeURIComponent(scan)}`);
  }

  async submit() {
    const form = this.form;
    const msg = $("risk-msg");
    msg.hidden = true;
    const invalid = validate(form);
    if (invalid) { invalid.focus(); return; }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    button.textContent = "Estimating…";
    try {
      const result = await this.api.post("/risk", readForm(form));
      this.render(result);
    } catch (err) {
      msg.className = "alert alert-error";
      clear(msg);
      if (err.code === "INVALID_FIELD" && err.field) {
        const control = setFieldError(form, err.field, err.message);
        msg.append(h("strong", { text: `Check “${LABELS[err.field] || humanize(err.field)}”. ` }), h("span", { text: err.message }));
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
      contributions.length ? h("ul", { class: "contribs", "aria-label": "Contributing factors" }, contributions.map((c) => contributionRow(c, maxAbs))) : null,
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
    this.form?.reset();
    $("risk-result").hidden = true;
  }
}
