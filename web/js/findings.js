// What a reading assessed (model v2): the stroke type, the finding read on the routed modality, the
// findings NOT assessed on it, and what the slice was read as. Every word comes from the result and
// the contract (GET /contract, model.reads); results of the previous model (no stroke_type) have none.
"use strict";

import { h } from "./dom.js";
import { humanize } from "./format.js";

const NOT_ASSESSED_CODE = "FINDING_NOT_ASSESSED";

/** A result of a model that says what it assessed (v2): it carries a stroke type. */
export function saysWhatWasAssessed(result) {
  return typeof result?.stroke_type === "string" && result.stroke_type !== "";
}

/** The warning code the "what was assessed" block shows (the card's warning list leaves it out). */
export const ASSESSED_BLOCK_CODE = NOT_ASSESSED_CODE;

/** The sentence(s) saying what was not assessed: the contract's for the routed modality, else the
 * result's warning detail, else the findings named from the result. */
function notAssessedText(result, contract, warnings) {
  const missing = result.not_assessed || [];
  if (!missing.length) return "";
  const read = contract.readsOn(result.routed_as);
  const same = read && read.finding === result.finding_assessed && read.not_assessed_sentence
    && missing.length === read.not_assessed.length && missing.every((f) => read.not_assessed.includes(f));
  if (same) return read.not_assessed_sentence;
  const warning = (warnings || []).find((w) => w.code === NOT_ASSESSED_CODE);
  const prefix = contract.warning(NOT_ASSESSED_CODE);
  if (warning && result.finding_assessed) {
    return prefix && warning.message.startsWith(prefix) ? warning.message.slice(prefix.length).trim() : warning.message;
  }
  const names = missing.map((f) => contract.findingName(f)).join(" or ");
  const where = result.routed_as ? ` on ${contract.modalityName(result.routed_as)}` : "";
  return result.finding_assessed ? `Not assessed${where} by this model: ${names}.` : `Nothing was assessed${where}: ${names} not read.`;
}

/** "Stroke type: haemorrhagic" (``id`` names the element for tests and links). */
export function strokeTypeLine(result, id, lead = "Stroke type (model output)") {
  const type = result.stroke_type;
  const tone = type === "not assessed" ? "muted" : type === "no finding" ? "ok" : "finding";
  return h("p", { class: "stroke-type-line" }, `${lead}: `,
    h("span", { class: `stroke-type stroke-type-${tone}`, id, dataset: { strokeType: type }, text: type }));
}

/** The "what was assessed" block: the finding read (and on what), and what was not. */
export function assessedBlock(result, contract, warnings, idPrefix) {
  const finding = result.finding_assessed;
  const routed = result.routed_as;
  const on = routed ? ` on ${contract.modalityName(routed)}` : "";
  const rows = [];
  rows.push(h("li", { id: `${idPrefix}-assessed`, dataset: { finding: finding || "" } },
    h("strong", { text: "Assessed: " }),
    finding ? `${contract.findingName(finding)}${on}.` : `nothing${on}.`));
  const sentence = notAssessedText(result, contract, warnings);
  if (sentence) rows.push(h("li", { id: `${idPrefix}-not-assessed`, class: "not-assessed", dataset: { findings: (result.not_assessed || []).join(" ") } },
    h("strong", { text: "Not assessed: " }), sentence));
  if (routed) rows.push(h("li", { id: `${idPrefix}-routed` }, h("strong", { text: "Read as: " }), contract.modalityName(routed) || humanize(routed)));
  return h("div", { class: "assessed-block", id: `${idPrefix}-block` },
    h("h3", { class: "sub-h", text: "What this model assessed" }), h("ul", { class: "assessed-list" }, rows));
}
