// What the clinician is told about identifiers: before upload, what this file loses in the browser
// (counts per category, never the values) and any reason to stop (text burned into the pixels, a
// file the browser could not clean); after the reading, who removed identifiers.
"use strict";

import { h, clear } from "./dom.js";

const CATEGORY_TEXT = {
  patient: "Patient details (name, ID, birth date…)",
  institution: "Institution, staff and device",
  names: "Other person names",
  study: "Study and request details",
  dates: "Dates and times",
  uids: "Study, series and instance UIDs (replaced)",
  private: "Private (vendor) fields",
  overlays: "Overlays",
  curves: "Curves",
};
const KIND_TEXT = { dicom: "DICOM", png: "PNG", jpeg: "JPEG", tiff: "TIFF" };

function removedItems(prepared) {
  const order = Object.keys(CATEGORY_TEXT);
  const rank = (what) => (order.includes(what) ? order.indexOf(what) : order.length);
  return Object.entries(prepared.removed).sort(([a], [b]) => rank(a) - rank(b)).map(([what, n]) => h("li", { dataset: { category: what, count: String(n) } },
    h("span", { text: prepared.kind === "dicom" ? (CATEGORY_TEXT[what] || what) : `Metadata: ${what}` }),
    h("span", { class: "privacy-count", text: ` × ${n}` })));
}

/** Whether the page suspects text burned into the pixels (the header says so, or a corner looks like
 * text). The server is told, and then keeps only the head in the previews it saves. */
export function textSuspected(prepared) {
  return Boolean(prepared.burnedIn.flag || prepared.burnedIn.corners?.length);
}

/** Reasons to stop before upload: [{code, text}]. */
export function privacyWarnings(prepared) {
  const warnings = [];
  if (!prepared.cleaned && KIND_TEXT[prepared.kind]) {
    warnings.push({ code: "not-cleaned", text: `Identifiers could not be removed in your browser: ${prepared.problem}. ` +
      "If you upload it anyway, the server removes them before anything is kept and deletes the upload after reading." });
  }
  if (prepared.burnedIn.flag) {
    warnings.push({ code: "burned-in-flag", text: "The file itself says text is burned into the image (Burned In Annotation: YES)." });
  }
  if (prepared.burnedIn.corners?.length) {
    warnings.push({ code: "burned-in-text", text: `Something that looks like text was found in the image's ${prepared.burnedIn.corners.join(" and ")} corner.` });
  }
  return warnings;
}

/** The summary shown as soon as a file is chosen. */
export function renderPrivacy(box, prepared) {
  clear(box);
  box.hidden = false;
  box.className = "privacy";
  const kind = KIND_TEXT[prepared.kind];
  if (!kind) { box.hidden = true; return; }
  if (prepared.cleaned) {
    const items = removedItems(prepared);
    box.append(h("p", { class: "privacy-head" }, h("strong", { text: "Removed in your browser before upload" }),
      h("span", { class: "muted", text: ` (${kind})` })));
    if (items.length) box.append(h("ul", { class: "privacy-list", id: "privacy-removed" }, items));
    else box.append(h("p", { class: "muted", text: prepared.kind === "dicom" ? "No identifying fields were found." : "The image carried no metadata." }));
    box.append(h("p", { class: "hint", text: prepared.kind === "dicom"
      ? "Pixel data, geometry and windowing are sent unchanged; the file is marked as de-identified."
      : "The pixels are sent unchanged; only metadata is removed." }));
  }
  const warnings = privacyWarnings(prepared);
  if (warnings.length) {
    box.append(h("div", { class: "alert alert-warning privacy-warnings", role: "note" },
      h("strong", { text: "Check before you upload" }),
      h("ul", {}, warnings.map((w) => h("li", { dataset: { code: w.code }, text: w.text })))));
  }
  box.append(h("p", { class: "hint", text: "Text burned into the image (a name, a date, an ID) is never removed: check the image shows none." }));
  box.dataset.kind = prepared.kind;
  box.dataset.cleaned = String(prepared.cleaned);
}

/** Ask before sending a file with warnings: resolves true to upload anyway, false to cancel. */
export function confirmUpload(box) {
  return new Promise((resolve) => {
    box.querySelector(".privacy-confirm")?.remove();
    const done = (answer) => { row.remove(); resolve(answer); };
    const row = h("div", { class: "privacy-confirm", role: "group", "aria-label": "Upload this file?" },
      h("button", { type: "button", class: "btn btn-secondary btn-small", id: "privacy-upload", onclick: () => done(true), text: "Upload anyway" }),
      h("button", { type: "button", class: "btn btn-quiet btn-small", id: "privacy-cancel", onclick: () => done(false), text: "Cancel" }));
    (box.querySelector(".privacy-warnings") || box).append(row);
    row.querySelector("#privacy-cancel").focus();
  });
}

/** One line on the result: who removed identifiers ("browser", "server", "none"), or null. */
export function privacyResult(scan, local) {
  const said = scan.result?.deidentification?.removed_by;
  const server = said === "server" || (scan.warnings || []).some((w) => w.code === "IDENTIFIERS_REMOVED_ON_SERVER");
  let by = server ? "server" : said;
  if (!by && local?.cleaned) by = "browser"; // images: the server keeps no metadata to judge by
  const text = {
    browser: local?.kind && local.kind !== "dicom" ? "Metadata removed in your browser before upload." : "Identifiers removed in your browser before upload.",
    server: "Identifiers removed on the server: they were still in the uploaded file, which was deleted after reading.",
    none: "No identifiers were found in the file.",
  }[by];
  if (!text) return null;
  return h("p", { class: `privacy-result privacy-${by}`, id: "privacy-result", dataset: { removedBy: by }, text });
}
