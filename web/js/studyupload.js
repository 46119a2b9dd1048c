// Several files or a folder, read as one study: each file is de-identified here (one UID salt per
// session, so a series keeps one new study/series UID and the server can still group it), the
// contract's limits are checked before anything is sent, POST /studies hands out one presigned POST
// per file (same order), and the files go up a few at a time with one byte progress bar and cancel.
"use strict";

import { $, h, clear, showMessage, hideMessage } from "./dom.js";
import { formatBytes } from "./format.js";
import { prepareFile } from "./deid.js";
import { confirmUpload, privacyWarnings, renderPrivacy, textSuspected } from "./privacy.js";
import { pathOf } from "./files.js";
import { UploadError, declaredType, neutralName, postToStorage, sliceAdvice } from "./storage.js";

const PARALLEL = 4; // enough to fill a clinic's uplink without queueing dozens of requests in the browser
const NAMES_SHOWN = 5;

const sum = (values) => values.reduce((a, b) => a + b, 0);
const sentLabel = (sent, n, failed) => `${sent} of ${n} files sent${failed ? `, ${failed} failed` : ""}`;

function nameList(files) {
  const names = files.slice(0, NAMES_SHOWN).map((f) => pathOf(f));
  return names.join(", ") + (files.length > NAMES_SHOWN ? ` and ${files.length - NAMES_SHOWN} more` : "");
}

/** The files' de-identifications as one summary for privacy.js (same shape as one file's). */
function mergedPrivacy(items) {
  const removed = {};
  for (const { prepared } of items) {
    for (const [what, n] of Object.entries(prepared.removed)) removed[what] = (removed[what] || 0) + n;
  }
  const uncleaned = items.filter((i) => !i.prepared.cleaned && i.prepared.kind !== "other");
  const corners = [...new Set(items.flatMap((i) => i.prepared.burnedIn.corners || []))];
  const kinds = new Set(items.map((i) => i.prepared.kind).filter((k) => k !== "other"));
  return {
    kind: kinds.size ? [...kinds][0] : "other", removed, cleaned: !uncleaned.length,
    problem: uncleaned.length ? `${uncleaned[0].prepared.problem} (${nameList(uncleaned.map((i) => i.file))})` : "",
    burnedIn: { flag: items.some((i) => i.prepared.burnedIn.flag), corners: corners.length ? corners : null },
    flagged: items.filter((i) => privacyWarnings(i.prepared).length).map((i) => i.file),
  };
}

const REFUSALS = {
  TOO_MANY_FILES: "This study has too many files.",
  FILE_TOO_LARGE: "A file is larger than the upload limit.",
  STUDY_TOO_LARGE: "These files are larger than a study may be.",
  UNSUPPORTED_CONTENT_TYPE: "A file type is not accepted.",
  RATE_LIMITED: "Too many uploads were started this hour.",
};

export class StudyUpload {
  /** hooks: uids() (the session's UidMap), busy(on), uploaded(study), created() (a study exists, the upload did not finish). */
  constructor(api, contract, hooks) {
    this.api = api;
    this.contract = contract;
    this.hooks = hooks;
    this.files = null; // the chosen files, natural order; null when one file (or none) is chosen
    this.prepared = null; // a promise of {items: [{file, type, prepared}], skipped: [file], summary}
    this.abort = null;
    this.confirming = false;
  }

  get busy() { return Boolean(this.abort); }

  choose(files) {
    this.files = files?.length ? files : null;
    this.prepared = null;
    if (!this.files) return;
    const total = sum(files.map((f) => f.size));
    const folder = pathOf(files[0]).includes("/") ? pathOf(files[0]).split("/")[0] : "";
    clear($("file-chosen")).append(h("span", { class: "file-name", text: `${files.length} files${folder ? ` from “${folder}”` : ""}` }),
      h("span", { class: "muted", text: ` · ${formatBytes(total)} · read as one study, in this order` }),
      h("details", { class: "study-files" }, h("summary", { text: "Show the files" }),
        h("ol", { id: "study-files" }, files.map((f) => h("li", { text: pathOf(f) })))));
    const privacy = $("privacy");
    privacy.hidden = false;
    privacy.className = "privacy working";
    clear(privacy).append(h("p", { class: "muted", id: "privacy-progress", text: `Removing identifiers in your browser… 0 of ${files.length}` }));
    $("dropzone").classList.add("has-file");
    this.prepared = this._prepareAll(files);
    this.prepared.then((ready) => { if (this.files === files) this._warnLimits(ready); });
  }

  /** One file at a time (memory stays at one file's bytes plus what is kept to send). */
  async _prepareAll(files) {
    await this.contract.loaded();
    const items = [];
    const skipped = [];
    for (const [n, file] of files.entries()) {
      if (this.files !== files) break;
      let type;
      try {
        type = await declaredType(file, this.contract);
      } catch {
        skipped.push(file); // a report or an index in the folder: not a slice, not sent
        continue;
      }
      let prepared;
      try {
        prepared = await prepareFile(file, { rules: this.contract.deidentification, uids: this.hooks.uids(), contentType: type || "" });
      } catch (err) {
        prepared = { kind: "dicom", blob: file, removed: {}, cleaned: false, problem: err.message || String(err), burnedIn: { flag: false, corners: null } };
      }
      items.push({ file, type, prepared });
      const progress = $("privacy-progress");
      if (progress && this.files === files) progress.textContent = `Removing identifiers in your browser… ${n + 1} of ${files.length}`;
    }
    const ready = { items, skipped, summary: mergedPrivacy(items) };
    if (this.files === files) this._renderPrivacy(ready);
    return ready;
  }

  _renderPrivacy({ items, skipped, summary }) {
    const box = $("privacy");
    renderPrivacy(box, summary);
    box.hidden = false;
    box.dataset.files = String(items.length);
    box.prepend(h("p", { class: "hint", text: `${items.length} files checked in your browser; the totals below are for all of them.` }));
    if (summary.flagged.length) box.append(h("p", { class: "hint", id: "privacy-flagged", text: `The warnings concern: ${nameList(summary.flagged)}.` }));
    if (skipped.length) {
      box.append(h("p", { class: "hint", id: "privacy-skipped", text: `Not sent (not an accepted file type): ${nameList(skipped)}.` }));
    }
  }

  /** The contract's limits, checked before anything is sent; an UploadError, or null. */
  _refusal(items) {
    const c = this.contract;
    const sizes = items.map((i) => i.prepared.blob.size);
    const fewer = "Nothing was sent. Choose one series, or fewer slices, and try again.";
    if (!items.length) return new UploadError("None of these files is an accepted type.", `StrokeLens reads ${c.typeNames || "image"} files.`);
    if (c.maxStudyFiles && items.length > c.maxStudyFiles) {
      return new UploadError(`These are ${items.length} files; a study holds at most ${c.maxStudyFiles}.`, fewer);
    }
    const big = items.filter((i) => c.maxUploadBytes && i.prepared.blob.size > c.maxUploadBytes).map((i) => i.file);
    if (big.length) {
      return new UploadError(`${big.length === 1 ? "A file is" : `${big.length} files are`} larger than the upload limit (${formatBytes(c.maxUploadBytes)}).`,
        `Nothing was sent: ${nameList(big)}. ${sliceAdvice(c)}`);
    }
    if (c.maxStudyBytes && sum(sizes) > c.maxStudyBytes) {
      return new UploadError(`These files add up to ${formatBytes(sum(sizes))}; a study may be at most ${formatBytes(c.maxStudyBytes)}.`, fewer);
    }
    return null;
  }

  _warnLimits(ready) {
    const refusal = this._refusal(ready.items);
    if (refusal && !this.busy) showMessage($("upload-msg"), "warning", refusal.message, refusal.detail.replace(/^Nothing was sent/, "They will not be sent"));
  }

  _progress(loaded, total, label) {
    const pct = total ? Math.min(100, Math.round((100 * loaded) / total)) : 0;
    $("progress").value = pct;
    $("progress-pct").textContent = `${pct} %`;
    if (label) $("progress-label").textContent = label;
  }

  async upload() {
    const msg = $("upload-msg");
    const files = this.files;
    if (!files || this.busy || this.confirming) return;
    hideMessage(msg);
    this.confirming = true;
    let ready;
    try {
      ready = await this.prepared;
      if (privacyWarnings(ready.summary).length && !(await confirmUpload($("privacy")))) {
        $("file").value = "";
        $("folder").value = "";
        this.choose(null);
        clear($("file-chosen"));
        $("privacy").hidden = true;
        showMessage(msg, "info", "Upload cancelled.", "Nothing was sent. Choose other files.");
        return;
      }
    } finally {
      this.confirming = false;
    }
    if (this.files !== files) return;
    const refusal = this._refusal(ready.items);
    if (refusal) { showMessage(msg, "error", refusal.message, refusal.detail); return; }
    const controller = new AbortController();
    this.abort = controller;
    this.hooks.busy(true);
    $("upload-progress").hidden = false;
    $("upload-progress").classList.remove("complete");
    this._progress(0, 1, `Starting a study of ${ready.items.length} files`);
    try {
      const study = await this._create(ready.items);
      const outcome = await this._sendAll(study, ready.items, controller.signal);
      this._finish(study, ready, outcome, controller.signal.aborted);
    } catch (err) {
      $("upload-progress").hidden = true;
      showMessage(msg, err.kind || "error", err.message, err.detail);
    } finally {
      this.abort = null;
      this.hooks.busy(false);
    }
  }

  async _create(items) {
    const modality = $("modality").value || undefined;
    const files = items.map((i) => ({ filename: neutralName(i.file), content_type: i.type, size: i.prepared.blob.size }));
    try {
      // One flag for the study: every slice's saved previews then keep only the head.
      return await this.api.post("/studies", { files, modality, burned_in_text: items.some((i) => textSuspected(i.prepared)) });
    } catch (err) {
      // The API names files by index ("files[3]"); the clinician knows them by name.
      const detail = String(err.message).replace(/files\[(\d+)\]/g, (m, i) => (items[i] ? `“${pathOf(items[i].file)}”` : m));
      throw new UploadError(REFUSALS[err.code] || "The upload could not be started.", `${detail} Nothing was sent.`);
    }
  }

  /** Every file to its own presigned POST, PARALLEL at a time; one failure does not stop the rest. */
  async _sendAll(study, items, signal) {
    const sizes = items.map((i) => i.prepared.blob.size);
    const total = sum(sizes);
    const loaded = sizes.map(() => 0);
    const failures = [];
    let next = 0;
    let sent = 0;
    const maxBytes = Number(study.max_bytes) || this.contract.maxUploadBytes;
    const worker = async () => {
      while (next < items.length && !signal.aborted) {
        const i = next++;
        const { file, prepared } = items[i];
        try {
          await postToStorage(study.uploads[i], prepared.blob, neutralName(file), maxBytes, sliceAdvice(this.contract),
            (done, of) => { loaded[i] = of ? (sizes[i] * done) / of : 0; this._progress(sum(loaded), total); }, signal);
          sent += 1;
        } catch (err) {
          if (!signal.aborted) failures.push({ file, message: err.message });
        }
        loaded[i] = sizes[i]; // a failed file counts as done for the bar: nothing more will go
        this._progress(sum(loaded), total, `Uploading: ${sentLabel(sent, items.length, failures.length)}`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, worker));
    const box = $("upload-progress");
    Object.assign(box.dataset, { files: String(items.length), sent: String(sent), failed: String(failures.length) });
    return { sent, failures };
  }

  _finish(study, ready, { sent, failures }, cancelled) {
    const msg = $("upload-msg");
    const n = ready.items.length;
    const minutes = Math.max(1, Math.round((Number(study.expires_in) || 0) / 60));
    const later = `The study is read with the files that arrived once its upload window closes (about ${minutes} min).`;
    if (cancelled) {
      $("upload-progress").hidden = true;
      showMessage(msg, "info", "Upload cancelled.", sent ? `${sent} of ${n} files had been sent. ${later}` : "No file was sent; nothing will be read.");
      this.hooks.created();
      return;
    }
    this._progress(1, 1, failures.length ? sentLabel(sent, n, failures.length) : `Uploaded ${n} files`);
    $("upload-progress").classList.toggle("complete", !failures.length);
    if (failures.length) {
      showMessage(msg, "warning", `${failures.length} of ${n} files could not be sent.`, sent ? later : "No file reached storage.");
      msg.append(h("ul", { class: "upload-failures", id: "upload-failures" },
        failures.map((f) => h("li", {}, h("span", { class: "file-name", text: pathOf(f.file) }), ` — ${f.message}`))));
    }
    if (sent) this.hooks.uploaded(study); else this.hooks.created();
  }

  cancel() { this.abort?.abort(); }

  reset() {
    this.abort?.abort();
    this.files = null;
    this.prepared = null;
  }
}
