// The result card: model output (never a diagnosis), probabilities, warnings, timings, model version.
// A result that says what it assessed (model v2) leads with its stroke type and says which finding
// was and was not assessed on the modality it was read as; older results render as they were.
"use strict";

import { h, add, clear } from "./dom.js";
import { formatMs, formatPercent, formatDate, humanize } from "./format.js";
import { ASSESSED_BLOCK_CODE, assessedBlock, saysWhatWasAssessed, strokeTypeLine } from "./findings.js";

const UNCERTAIN_TEXT = "Indeterminate — review";
// Warnings whose text the card's headline already shows, so the warning list does not repeat them.
const HEADLINE_CODE = { ood: "OUT_OF_DISTRIBUTION", uncertain: "INDETERMINATE" };

function totalMs(timings) {
  return Object.values(timings || {}).reduce((sum, v) => sum + (Number(v) || 0), 0);
}

function turnaroundMs(scan) {
  const a = Date.parse(scan.created_at);
  const b = Date.parse(scan.updated_at);
  return Number.isFinite(a) && Number.isFinite(b) && b >= a ? b - a : NaN;
}

function topLabel(probabilities) {
  return Object.entries(probabilities || {}).sort((a, b) => b[1] - a[1])[0]?.[0];
}

/** One line for the history list: {badge, tone, line}. */
export function resultSummary(scan) {
  const r = scan.result || {};
  switch (scan.status) {
    case "PENDING": return { badge: "Awaiting upload", tone: "neutral", line: "No file received yet" };
    case "PROCESSING": return { badge: "Reading", tone: "info", line: "The model is reading the slice" };
    case "FAILED": return { badge: "Not read", tone: "error", line: scan.error?.code ? humanize(scan.error.code) : "Could not be read" };
    case "DONE": {
      if (r.out_of_distribution) return { badge: "Out of scope", tone: "warning", line: "Not like the training images" };
      const label = r.label || topLabel(r.probabilities);
      const p = r.probabilities?.[label];
      if (r.uncertain) return { badge: "Indeterminate", tone: "warning", line: "Review needed" };
      if (saysWhatWasAssessed(r)) {
        const f = r.finding_assessed;
        const score = f && r.probabilities?.[f] !== undefined ? ` (${f} ${formatPercent(r.probabilities[f])})` : "";
        return { badge: "Done", tone: "ok", line: `Stroke type: ${r.stroke_type}${score}` };
      }
      return { badge: "Done", tone: "ok", line: `Highest output: ${label}${p !== undefined ? ` (${formatPercent(p)})` : ""}` };
    }
    default: return { badge: scan.status || "?", tone: "neutral", line: "" };
  }
}

/** A warning is {code, message} (codes registered on the server, served by GET /contract). */
export function warningItem(warning) {
  return h("li", { dataset: { code: warning.code } }, h("strong", { text: `${humanize(warning.code)}: ` }), String(warning.message));
}

/** The probabilities in the model's own class order (the contract's findings), others after. */
function orderedEntries(probabilities, findings) {
  const rank = (label) => { const i = findings.indexOf(label); return i < 0 ? findings.length : i; };
  return Object.entries(probabilities || {}).sort(([a], [b]) => rank(a) - rank(b));
}

/** One bar per class of ``probabilities`` (keyed by class); ``nameOf`` words a key (default: the key). */
export function probabilityChart(probabilities, highlight, findings, nameOf = (label) => label) {
  const entries = orderedEntries(probabilities, findings);
  const list = h("ul", { class: "prob-chart", "aria-label": "Model output probability per class" });
  for (const [label, p] of entries) {
    const pct = Math.max(0, Math.min(1, Number(p)));
    list.append(h("li", { class: `prob-row${label === highlight ? " top" : ""}`, dataset: { label, probability: String(p) } },
      h("span", { class: "prob-label", text: nameOf(label) }),
      h("span", { class: "prob-track", "aria-hidden": "true" }, h("span", { class: "prob-bar", style: { width: `${(100 * pct).toFixed(1)}%` } })),
      h("span", { class: "prob-value", text: formatPercent(p) })));
  }
  return list;
}

function metaList(scan) {
  const r = scan.result || {};
  const rows = [];
  const add = (term, ...value) => rows.push(h("div", { class: "meta-item" }, h("dt", { text: term }), h("dd", {}, ...value)));
  add("Model version", h("span", { class: "mono", text: r.model_version || "–" }),
    r.synthetic_model ? h("span", { class: "badge badge-warning", text: "synthetic training data" }) : null);
  const processing = totalMs(scan.timings_ms);
  if (processing) add("Processing time", formatMs(processing));
  const turnaround = turnaroundMs(scan);
  if (Number.isFinite(turnaround)) add("Turnaround", `${formatMs(turnaround)} from upload request to result`);
  const modality = r.modality || scan.modality_declared;
  add("Modality", modality ? (modality === "MR" ? "MRI" : modality) : "not stated",
    scan.modality_declared && r.modality && scan.modality_declared !== r.modality ? ` (chosen: ${scan.modality_declared})` : "");
  if (r.source_format) add("File format", String(r.source_format).toUpperCase());
  if (Array.isArray(r.image_size) && r.image_size.length >= 2) add("Image size", `${r.image_size[1]} × ${r.image_size[0]} px`);
  add("Uploaded", formatDate(scan.created_at));
  return h("dl", { class: "meta" }, rows);
}

function detailsBlock(scan) {
  const r = scan.result || {};
  const parts = [];
  if (scan.timings_ms && Object.keys(scan.timings_ms).length) {
    parts.push(h("h4", { text: "Timings" }), h("table", { class: "kv-table" },
      h("tbody", {}, Object.entries(scan.timings_ms).map(([k, v]) => h("tr", {}, h("th", { scope: "row", text: humanize(k) }), h("td", { text: formatMs(Number(v)) }))))));
  }
  if (r.preprocessing) {
    const text = typeof r.preprocessing === "string" ? r.preprocessing : JSON.stringify(r.preprocessing);
    parts.push(h("h4", { text: "Preprocessing" }), h("p", { text }));
  }
  if (r.dicom && Object.keys(r.dicom).length) {
    parts.push(h("h4", { text: "DICOM header (allow-listed, de-identified fields)" }), h("table", { class: "kv-table" },
      h("tbody", {}, Object.entries(r.dicom).map(([k, v]) => h("tr", {}, h("th", { scope: "row", text: k }),
        h("td", { class: "mono", text: Array.isArray(v) ? v.join(", ") : String(v) }))))));
  }
  if (!parts.length) return null;
  return h("details", { class: "result-details" }, h("summary", { text: "Technical details" }), parts);
}

function failedCard(card, scan, contract) {
  const code = scan.error?.code;
  card.classList.add("result-failed");
  add(card,
    h("p", { class: "result-headline", text: "This scan could not be read" }),
    h("p", { class: "result-error", id: "result-error", text: scan.error?.message || contract.error(code, "The scan could not be processed.") }),
    code ? h("p", { class: "muted small" }, "Reason code: ", h("span", { class: "mono", text: code })) : null,
    h("p", { class: "muted", text: "No model output was produced. Check the file and upload it again." }));
}

/** The registered sentence for a warning code: the contract's, else the scan's own (which may carry a detail). */
function noticeText(scan, contract, code) {
  return contract.warning(code) || (scan.warnings || []).find((w) => w.code === code)?.message || "";
}

function oodHeadline(card, scan, contract) {
  const r = scan.result || {};
  card.classList.add("result-ood");
  add(card,
    h("p", { class: "result-kicker", text: "Model output withheld" }),
    h("p", { class: "result-headline", id: "ood-message", text: noticeText(scan, contract, HEADLINE_CODE.ood) || "No reading is given for this image." }),
    r.ood_reason ? h("p", { class: "result-reason" }, h("strong", { text: "Why: " }), String(r.ood_reason)) : null,
    h("p", { class: "muted", text: "No class is suggested for this image. A qualified clinician must read it." }));
  if (saysWhatWasAssessed(r)) add(card, strokeTypeLine(r, "stroke-type"));
}

/** The words for a class key: the contract's finding name ("normal" stays "normal"). */
function classNamer(contract) {
  return (label) => (label === "normal" ? "normal" : contract.findingName(label));
}

/** Model v2: the stroke type leads; the output is for the one finding read on this modality. */
function findingHeadline(card, scan, contract) {
  const r = scan.result || {};
  const name = classNamer(contract);
  add(card, h("p", { class: "result-kicker", text: "Model output · not a diagnosis" }));
  if (r.uncertain) {
    card.classList.add("result-uncertain");
    add(card,
      h("p", { class: "result-headline", id: "uncertain-message", text: UNCERTAIN_TEXT }),
      h("p", { class: "muted", text: `${noticeText(scan, contract, HEADLINE_CODE.uncertain)} A qualified clinician must review it.`.trim() }),
      strokeTypeLine(r, "stroke-type", "Stroke type the score leans to"));
  } else {
    add(card,
      h("p", { class: "result-headline" }, "Stroke type: ",
        h("span", { class: "stroke-type", id: "stroke-type", dataset: { strokeType: r.stroke_type }, text: r.stroke_type })),
      r.finding_assessed && r.label ? h("p", { class: "result-output" }, `Read for ${name(r.finding_assessed)}: `,
        h("span", { class: "result-label", dataset: { label: r.label }, text: name(r.label) })) : null,
      h("p", { class: "muted", text: "Probabilities below are the model's output for this one slice. They are not a diagnosis and must not drive treatment." }));
  }
  if (r.probabilities && Object.keys(r.probabilities).length) {
    add(card, h("h3", { class: "sub-h", text: "Probability per class" }),
      probabilityChart(r.probabilities, r.uncertain ? null : r.label, contract.findings, name));
  }
}

function readingHeadline(card, scan, contract) {
  const r = scan.result || {};
  const label = r.label || topLabel(r.probabilities);
  add(card, h("p", { class: "result-kicker", text: "Model output · not a diagnosis" }));
  if (r.uncertain) {
    card.classList.add("result-uncertain");
    add(card,
      h("p", { class: "result-headline", id: "uncertain-message", text: UNCERTAIN_TEXT }),
      h("p", { class: "muted", text: `${noticeText(scan, contract, HEADLINE_CODE.uncertain)} A qualified clinician must review it.`.trim() }));
  } else {
    add(card,
      h("p", { class: "result-headline" }, "Highest model output: ", h("span", { class: "result-label", text: label })),
      h("p", { class: "muted", text: "Probabilities below are the model's output for this one slice. They are not a diagnosis and must not drive treatment." }));
  }
  add(card, h("h3", { class: "sub-h", text: "Probability per class" }),
    probabilityChart(r.probabilities, r.uncertain ? null : label, contract.findings));
}

/** The scan's warnings, less the one the headline shows; a synthetic model is always said. */
function warningsOf(scan, contract) {
  const r = scan.result || {};
  const shown = r.out_of_distribution ? HEADLINE_CODE.ood : r.uncertain ? HEADLINE_CODE.uncertain : null;
  const inBlock = saysWhatWasAssessed(r) ? ASSESSED_BLOCK_CODE : null; // the "what was assessed" block says it
  const warnings = (scan.warnings || []).filter((w) => w.code !== shown && w.code !== inBlock);
  const synthetic = contract.warning("SYNTHETIC_MODEL");
  if (r.synthetic_model && synthetic && !warnings.some((w) => w.code === "SYNTHETIC_MODEL")) {
    warnings.push({ code: "SYNTHETIC_MODEL", message: synthetic }); // results stored before the server said so
  }
  return warnings;
}

/** The result card. ``contract`` (contract.js) supplies registered texts and the class order. */
export function renderResult(container, scan, contract) {
  clear(container);
  const card = h("div", { class: "result-card", dataset: { status: scan.status } });
  container.append(card);
  if (scan.status === "FAILED") { failedCard(card, scan, contract); return; }
  if (scan.status !== "DONE") return;
  const r = scan.result || {};
  if (r.out_of_distribution) oodHeadline(card, scan, contract);
  else if (saysWhatWasAssessed(r)) findingHeadline(card, scan, contract);
  else readingHeadline(card, scan, contract);
  if (saysWhatWasAssessed(r)) add(card, assessedBlock(r, contract, scan.warnings, "result"));
  const warnings = warningsOf(scan, contract);
  if (warnings.length) {
    add(card, h("div", { class: "alert alert-warning result-warnings", role: "note" },
      h("strong", { text: warnings.length === 1 ? "Warning" : "Warnings" }), h("ul", {}, warnings.map(warningItem))));
  }
  add(card, metaList(scan), detailsBlock(scan));
  add(card, h("div", { class: "result-actions" },
    h("a", { class: "btn btn-secondary", href: `#/risk?scan=${encodeURIComponent(scan.scan_id)}`, text: "Open the clinical risk form" }),
    h("a", { class: "btn btn-quiet", href: "#/", text: "Read another scan" })));
}
