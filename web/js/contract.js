// The server's contract (GET /contract): accepted files, limits, CT window presets, the model's
// findings, error and warning texts, and the clinical risk form. The site keeps no copies of these;
// it fetches them once per sign-in. Every accessor answers sensibly while the contract is missing
// (not loaded yet, or the request failed): the server still checks everything itself.
"use strict";

import { orList } from "./format.js";

export class Contract {
  constructor(api) {
    this.api = api;
    this.value = null;
    this.pending = null;
  }

  /** The contract, fetched once and cached; a failure is not cached, so the next call tries again. */
  load() {
    if (!this.pending) {
      const pending = this.api.get("/contract").then(
        (value) => { if (this.pending === pending) this.value = value; return value; },
        (err) => { if (this.pending === pending) this.pending = null; throw err; });
      this.pending = pending;
    }
    return this.pending;
  }

  /** The contract, or null when it could not be fetched (the caller falls back). */
  loaded() {
    return this.load().catch(() => null);
  }

  /** Forget it (sign-out): the next clinician's session fetches it again. */
  reset() {
    this.value = null;
    this.pending = null;
  }

  get known() { return this.value !== null; }

  // ---- uploads ----------------------------------------------------------------------------
  get contentTypes() { return this.value?.accepted?.content_types || []; }
  get extensions() { return this.value?.accepted?.extensions || []; }
  get maxUploadBytes() { return Number(this.value?.limits?.max_upload_bytes) || 0; }
  /** A study's limits (files, bytes in all); 0 when unknown: the API refuses over-limit studies itself. */
  get maxStudyFiles() { return Number(this.value?.limits?.max_study_files) || 0; }
  get maxStudyBytes() { return Number(this.value?.limits?.max_study_bytes) || 0; }
  /** The de-identification rules the server applies too (deid.js applies them before upload), or null. */
  get deidentification() { return this.value?.deidentification || null; }

  /** For the file input's ``accept``: the extensions, then the content types. */
  get acceptList() { return [...this.extensions, ...this.contentTypes]; }

  acceptsType(type) { return this.contentTypes.includes(type); }

  acceptsName(name) {
    const ext = (String(name).toLowerCase().match(/\.[a-z0-9]+$/) || [""])[0];
    return Boolean(ext) && this.extensions.includes(ext);
  }

  /** "DICOM, JPEG, PNG or TIFF", from the content types. */
  get typeNames() { return orList(this.contentTypes.map((t) => t.split("/").pop().toUpperCase())); }

  // ---- the model and its readings ----------------------------------------------------------
  get windowPresets() { return this.value?.window_presets || []; }
  get findings() { return this.value?.model?.findings || []; }
  /** Per modality the model reads: {modality, modality_name, finding, finding_name, stroke_type, not_assessed, not_assessed_sentence}. */
  get reads() { return this.value?.model?.reads || []; }
  /** What is read on a routed modality ("CT", "MR-DWI"), or null. */
  readsOn(modality) { return this.reads.find((r) => r.modality === modality) || null; }
  /** A finding key ("hemorrhage") in words ("intracranial haemorrhage"); the key itself when unknown. */
  findingName(key) { return this.value?.model?.finding_names?.[key] || String(key ?? ""); }
  /** A routed modality ("MR-DWI") in words; the key itself when unknown. */
  modalityName(key) { return this.value?.model?.modality_names?.[key] || String(key ?? ""); }
  /** How a study's slice scores become its output, when the served rule is ``rule``; "" when unknown. */
  aggregationText(rule) {
    const agg = this.value?.model?.aggregation;
    return agg && agg.rule === rule ? agg.description || "" : "";
  }

  /** The registered sentence for a warning or error code, or ``fallback``. */
  warning(code, fallback = "") { return this.value?.warnings?.[code] || fallback; }
  error(code, fallback = "") { return this.value?.errors?.[code] || fallback; }

  // ---- the clinical risk form --------------------------------------------------------------
  get riskForm() { return this.value?.risk_form || []; }
}
