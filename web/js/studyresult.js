// The study result card: the study-level model output (never a diagnosis), its probabilities, what
// was and was not assessed (counts, unreadable codes, series skipped and why), warnings, and the key
// slices first (most suspicious first) as thumbnails that open in the stack viewer. A study of a
// model that says what it assessed (v2) leads with its stroke type and the finding read.
"use strict";

import { h, add, clear } from "./dom.js";
import { formatDate, formatPercent, humanize } from "./format.js";
import { assessedBlock, saysWhatWasAssessed, strokeTypeLine } from "./findings.js";
import { probabilityChart, warningItem } from "./result.js";

// Results stored before the contract described the aggregation rule.
const AGGREGATION_TEXT = { max: "the highest score among the assessed slices" };
const aggregationText = (contract, rule) => contract.aggregationText(rule) || AGGREGATION_TEXT[rule] || humanize(rule || "–");

/** One line for the history list: {badge, tone, line}. */
export function studySummary(study) {
  const r = study.result || {};
  const p = study.progress || {};
  switch (study.status) {
    case "PENDING": return { badge: "Uploading", tone: "neutral", line: `${p.files_received ?? 0} received` };
    case "PROCESSING": return { badge: "Reading", tone: "info", line: "The model is reading the stack" };
    case "FAILED": return { badge: "Not read", tone: "error", line: study.error?.code ? humanize(study.error.code) : "Could not be read" };
    case "DONE": {
      const c = r.counts || {};
      const slices = `${c.assessed ?? 0} assessed`;
      if (!r.label) return { badge: "No output", tone: "warning", line: slices };
      if (saysWhatWasAssessed(r)) return { badge: "Done", tone: "ok", line: `Stroke type: ${r.stroke_type} · ${slices}` };
      return { badge: "Done", tone: "ok", line: `Highest output: ${r.label} (${formatPercent(r.probabilities?.[r.label])}) · ${slices}` };
    }
    default: return { badge: study.status || "?", tone: "neutral", line: "" };
  }
}

/** The counts as a definition list; each row carries its key and number for tests and styles. */
function countsList(result, contract) {
  const c = result.counts || {};
  const rows = [];
  const row = (key, term, value, ...extra) => rows.push(h("div", { class: "meta-item", dataset: { count: key, value: String(value ?? 0) } },
    h("dt", { text: term }), h("dd", {}, String(value ?? 0), ...extra)));
  row("files", "Files in the study", c.files);
  row("assessed", "Slices assessed by the model", c.assessed);
  row("not_assessable", "Not assessable (outside the brain, or unlike the training images)", c.not_assessable);
  row("outside_brain", "of them outside the brain (neck, skull base, vertex)", c.outside_brain);
  const codes = Object.entries(result.unreadable || {});
  row("unreadable", "Unreadable", c.unreadable, codes.length ? h("ul", { class: "code-list", id: "unreadable-codes" }, codes.map(([code, n]) =>
    h("li", { dataset: { code } }, h("span", { class: "mono", text: code }), ` × ${n}: ${contract.error(code, humanize(code))}`))) : null);
  row("missing", "Missing (never arrived)", c.missing);
  row("duplicates", "Duplicates (same slice twice, read once)", c.duplicates);
  row("skipped", "In series not read", c.skipped);
  return h("dl", { class: "meta study-counts", id: "study-counts" }, rows);
}

function seriesTable(series) {
  if (!series?.length) return null;
  const yesNo = (v) => (v ? "yes" : "no");
  return h("details", { class: "result-details", open: series.some((s) => !s.read) },
    h("summary", { text: `Series (${series.length})` }),
    h("table", { class: "kv-table series-table", id: "study-series" },
      h("thead", {}, h("tr", {}, ["Series", "Modality", "Slices", "Duplicates", "Axial", "Thickness", "Read"].map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, series.map((s) => h("tr", { dataset: { series: String(s.series), read: String(Boolean(s.read)) } },
        h("td", { text: String(s.series) }), h("td", { text: s.modality || "–" }), h("td", { text: String(s.slices) }),
        h("td", { text: String(s.duplicates || 0) }), h("td", { text: yesNo(s.axial) }),
        h("td", { text: s.slice_thickness ? `${s.slice_thickness} mm` : "–" }),
        h("td", { text: s.read ? "read" : `not read: ${s.reason || "—"}` }))))));
}

/** The study's warnings; a synthetic model is always said. */
function warningsOf(study, contract) {
  const warnings = [...(study.warnings || [])];
  const synthetic = contract.warning("SYNTHETIC_MODEL");
  if (study.result?.synthetic_model && synthetic && !warnings.some((w) => w.code === "SYNTHETIC_MODEL")) {
    warnings.push({ code: "SYNTHETIC_MODEL", message: synthetic });
  }
  return warnings;
}

/** Thumbnails of the key slices, most suspicious first; choosing one opens it in the stack viewer. */
function keySlices(study, onSlice) {
  const r = study.result || {};
  const previews = study.key_slice_previews || {};
  const total = (r.stack || []).length;
  if (!r.key_slices?.length) return null;
  return h("div", { class: "key-slices-block" },
    h("h3", { class: "sub-h", id: "key-slices-h", text: "Key slices (most suspicious first)" }),
    h("ol", { class: "key-slices", id: "key-slices", "aria-labelledby": "key-slices-h" }, r.key_slices.map((pos, rank) => {
      const url = previews[pos]?.display || previews[pos]?.model_input;
      const score = r.scores?.[pos];
      const label = `Slice ${pos + 1} of ${total}, model score ${formatPercent(score)}`;
      return h("li", { dataset: { position: String(pos), rank: String(rank) } },
        h("button", { type: "button", class: "key-slice", "aria-label": `Open ${label.toLowerCase()} in the viewer`, onclick: () => onSlice(pos) },
          url ? h("img", { src: url, alt: "", referrerpolicy: "no-referrer", decoding: "async", width: "96", height: "96" })
            : h("span", { class: "img-missing small", text: "no preview" }),
          h("span", { class: "key-slice-cap", text: `Slice ${pos + 1}` }),
          h("span", { class: "muted small", text: formatPercent(score) })));
    })));
}

function metaList(study, contract) {
  const r = study.result || {};
  return h("dl", { class: "meta" },
    h("div", { class: "meta-item" }, h("dt", { text: "Model version" }), h("dd", {}, h("span", { class: "mono", text: r.model_version || "–" }),
      r.synthetic_model ? h("span", { class: "badge badge-warning", text: "synthetic training data" }) : null)),
    h("div", { class: "meta-item" }, h("dt", { text: "Study output" }), h("dd", { text: aggregationText(contract, r.aggregation) })),
    study.modality_declared ? h("div", { class: "meta-item" }, h("dt", { text: "Modality chosen" }), h("dd", { text: study.modality_declared })) : null,
    h("div", { class: "meta-item" }, h("dt", { text: "Uploaded" }), h("dd", { text: formatDate(study.created_at) })));
}

/** Render a final study. ``onSlice(position)`` opens a stack position in the viewer. */
export function renderStudyResult(container, study, contract, { onSlice }) {
  clear(container);
  const card = h("div", { class: "result-card study-card", dataset: { status: study.status } });
  container.append(card);
  if (study.status === "FAILED") {
    card.classList.add("result-failed");
    add(card, h("p", { class: "result-headline", text: "This study could not be read" }),
      h("p", { class: "result-error", id: "result-error", text: study.error?.message || contract.error(study.error?.code, "The study could not be processed.") }),
      h("p", { class: "muted", text: "No model output was produced. Check the files and upload them again." }));
    return;
  }
  if (study.status !== "DONE") return;
  const r = study.result || {};
  add(card, h("p", { class: "result-kicker", text: "Model output for the study · not a diagnosis" }));
  const v2 = saysWhatWasAssessed(r);
  const name = (label) => (label === "normal" ? "normal" : contract.findingName(label));
  if (r.label && v2) {
    add(card, h("p", { class: "result-headline" }, "Study stroke type: ",
      h("span", { class: "stroke-type", id: "study-stroke-type", dataset: { strokeType: r.stroke_type }, text: r.stroke_type })),
    r.finding_assessed ? h("p", { class: "result-output" }, `Read for ${name(r.finding_assessed)}: `,
      h("span", { class: "result-label", dataset: { label: r.label }, text: name(r.label) })) : null,
    h("p", { class: "muted", text: `Computed from ${r.counts?.assessed ?? 0} assessed slices (${aggregationText(contract, r.aggregation)}). ` +
        "It is not a diagnosis and must not drive treatment; a qualified clinician must read the whole study." }),
    h("h3", { class: "sub-h", text: "Study probability per class" }),
    probabilityChart(r.probabilities, r.label, contract.findings, name));
  } else if (r.label) {
    add(card, h("p", { class: "result-headline" }, "Highest study-level model output: ", h("span", { class: "result-label", text: r.label })),
      h("p", { class: "muted", text: `Computed from ${r.counts?.assessed ?? 0} assessed slices (${aggregationText(contract, r.aggregation)}). ` +
        "It is not a diagnosis and must not drive treatment; a qualified clinician must read the whole study." }),
      h("h3", { class: "sub-h", text: "Study probability per class" }),
      probabilityChart(r.probabilities, r.label, contract.findings));
  } else {
    add(card, h("p", { class: "result-headline", text: "No model output for this study" }),
      h("p", { class: "muted", text: "No slice could be assessed by the model. A qualified clinician must read the study." }),
      v2 ? strokeTypeLine(r, "study-stroke-type", "Study stroke type") : null);
  }
  if (v2) add(card, assessedBlock(r, contract, [], "study"));
  const warnings = warningsOf(study, contract);
  if (warnings.length) {
    add(card, h("div", { class: "alert alert-warning result-warnings", role: "note" },
      h("strong", { text: warnings.length === 1 ? "Warning" : "Warnings" }), h("ul", {}, warnings.map(warningItem))));
  }
  add(card, keySlices(study, onSlice), h("h3", { class: "sub-h", text: "What was read" }), countsList(r, contract), seriesTable(r.series), metaList(study, contract));
}
