// Upload: the file is de-identified in the browser (deid.js) as soon as it is chosen, then the
// cleaned bytes go straight to storage (storage.js) with the presigned POST the API hands out
// (POST /scans), with progress and cancel. Several files are a study (studyupload.js).
"use strict";

import { $, h, clear, showMessage, hideMessage } from "./dom.js";
import { formatBytes } from "./format.js";
import { UidMap, prepareFile } from "./deid.js";
import { confirmUpload, privacyWarnings, renderPrivacy, textSuspected } from "./privacy.js";
import { collect, droppedFiles } from "./files.js";
import { StudyUpload } from "./studyupload.js";
import { UploadError, declaredType, neutralName, postToStorage, sliceAdvice, tooLargeError } from "./storage.js";

/** The upload form: choose or drop a file, see what the browser removes from it, send it, report
 * progress. Hooks: ``uploaded(scan, prepared, contentType)`` once the storage has the file (``prepared``
 * from deid.prepareFile: the bytes sent, their kind, what was removed); ``created()`` when a scan
 * exists but the upload failed. */
export class UploadForm {
  constructor(api, contract, hooks) {
    this.api = api;
    this.contract = contract;
    this.hooks = hooks;
    this.file = null;
    this.prepared = null; // the chosen file's de-identification, a promise of deid.prepareFile's answer
    this.uids = new UidMap(); // one salt per session: a series' files keep one new study/series UID
    this.abort = null; // the AbortController of the upload in flight
    this.confirming = false;
    // Several files or a folder: one study (POST /studies), same form, same salt.
    this.study = new StudyUpload(api, contract, { uids: () => this.uids, busy: (on) => this._busy(on), uploaded: hooks.studyUploaded, created: hooks.created });
    this._bind();
  }

  get busy() { return Boolean(this.abort) || this.study.busy; }

  /** One file: the single-slice flow (POST /scans); more: a study. */
  chooseFiles(files) {
    const list = collect(files);
    if (list.length > 1) { this.choose(null); this.study.choose(list); return; }
    this.study.choose(null);
    this.choose(list[0] || null);
  }

  _bind() {
    const input = $("file");
    const zone = $("dropzone");
    input.addEventListener("change", () => this.chooseFiles(input.files));
    $("folder").addEventListener("change", () => this.chooseFiles($("folder").files));
    for (const type of ["dragenter", "dragover"]) {
      zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("dragging"); });
    }
    for (const type of ["dragleave", "dragend"]) zone.addEventListener(type, () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("dragging");
      droppedFiles(e.dataTransfer).then((files) => { if (files.length && !this.busy) this.chooseFiles(files); });
    });
    // Dropping a file anywhere else must not navigate away from the app.
    window.addEventListener("dragover", (e) => e.preventDefault());
    window.addEventListener("drop", (e) => e.preventDefault());
    $("upload-form").addEventListener("submit", (e) => { e.preventDefault(); this.upload(); });
    $("cancel-btn").addEventListener("click", () => { this.abort?.abort(); this.study.cancel(); });
  }

  choose(file) {
    this.file = file;
    hideMessage($("upload-msg"));
    $("upload-progress").hidden = true;
    const chosen = clear($("file-chosen"));
    const privacy = clear($("privacy"));
    privacy.hidden = true;
    delete privacy.dataset.kind; // tests and styles read these: only ever the current file's
    delete privacy.dataset.cleaned;
    this.prepared = null;
    if (file) {
      chosen.append(h("span", { class: "file-name", text: file.name }), h("span", { class: "muted", text: ` · ${formatBytes(file.size)}` }));
      privacy.hidden = false;
      privacy.className = "privacy working";
      privacy.append(h("p", { class: "muted", text: "Removing identifiers in your browser…" }));
      this.prepared = this._prepare(file);
    }
    $("dropzone").classList.toggle("has-file", Boolean(file));
  }

  /** De-identify the chosen file here (nothing is sent yet) and show what goes. */
  async _prepare(file) {
    await this.contract.loaded();
    let prepared;
    try {
      prepared = await prepareFile(file, { rules: this.contract.deidentification, uids: this.uids });
    } catch (err) { // an unexpected failure: the original file stays, and the clinician is asked
      prepared = { kind: "dicom", blob: file, removed: {}, cleaned: false, problem: err.message || String(err), burnedIn: { flag: false, corners: null } };
    }
    if (this.file === file) {
      renderPrivacy($("privacy"), prepared);
      this._warnIfTooLarge(file, prepared.blob.size);
    }
    return prepared;
  }

  /** Say at once when the file to send is over the contract's limit (it would not be sent). */
  _warnIfTooLarge(file, size) {
    const max = this.contract.maxUploadBytes;
    if (this.file !== file || this.busy || !max || size <= max) return;
    showMessage($("upload-msg"), "warning", `This file is larger than the upload limit (${formatBytes(max)}).`,
      `It will not be sent. ${sliceAdvice(this.contract)}`);
  }

  _setProgress(loaded, total, label) {
    const pct = total ? Math.min(100, Math.round((100 * loaded) / total)) : 0;
    $("progress").value = pct;
    $("progress-pct").textContent = `${pct} %`;
    if (label) $("progress-label").textContent = label;
  }

  _busy(on) {
    $("upload-btn").disabled = on;
    $("file").disabled = on;
    $("folder").disabled = on;
    $("modality").disabled = on;
    $("cancel-btn").hidden = !on;
    $("dropzone").classList.toggle("disabled", on);
  }

  async upload() {
    if (this.study.files) { this.study.upload(); return; }
    const msg = $("upload-msg");
    hideMessage(msg);
    const file = this.file;
    if (!file) {
      showMessage(msg, "error", "Choose a file first.", "Drag a slice onto the box above or use “Choose a file”.");
      $("file").focus();
      return;
    }
    if (this.busy || this.confirming) return;
    this.confirming = true;
    let prepared;
    try {
      prepared = await this.prepared;
      // Burned-in text, or a file the browser could not clean: the clinician decides, or cancels.
      if (privacyWarnings(prepared).length && !(await confirmUpload($("privacy")))) {
        $("file").value = "";
        this.choose(null);
        showMessage(msg, "info", "Upload cancelled.", "Nothing was sent. Choose another file.");
        return;
      }
    } finally {
      this.confirming = false;
    }
    if (this.file !== file) return; // another file was chosen meanwhile
    const controller = new AbortController();
    this.abort = controller;
    this._busy(true);
    $("upload-progress").hidden = false;
    $("upload-progress").classList.remove("complete");
    this._setProgress(0, 1, `Uploading ${file.name}`);
    let sent = null;
    try {
      sent = await this._send(file, prepared, controller.signal);
    } catch (err) {
      $("upload-progress").hidden = true;
      showMessage(msg, err.kind || "error", err.message, err.detail);
      if (err.scan) this.hooks.created();
    } finally {
      this.abort = null;
      this._busy(false);
    }
    if (sent) this.hooks.uploaded(sent.scan, prepared, sent.contentType);
  }

  /** POST /scans, then the de-identified bytes to storage. Returns {scan, contentType}; errors carry
   * ``scan`` once one exists. ``file`` (the original) only gives the type; ``prepared.blob`` is sent. */
  async _send(file, prepared, signal) {
    await this.contract.loaded(); // fetched at sign-in; without it the API and the storage still check
    const advice = sliceAdvice(this.contract);
    const declared = await declaredType(file, this.contract);
    const body = prepared.blob;
    const limit = this.contract.maxUploadBytes;
    if (limit && body.size > limit) throw tooLargeError(body.size, limit, false, advice); // no scan is created
    const scan = await this._create(file, declared, textSuspected(prepared));
    try {
      const maxBytes = Number(scan.max_bytes) || limit; // this upload's own limit, as the API states it
      if (maxBytes && body.size > maxBytes) throw tooLargeError(body.size, maxBytes, false, advice);
      if (signal.aborted) throw new UploadError("Upload cancelled.", "Nothing was read.", "info");
      await postToStorage(scan.upload, body, neutralName(file), maxBytes, advice, (loaded, total) => this._setProgress(loaded, total), signal);
    } catch (err) {
      err.scan = scan;
      throw err;
    }
    this._setProgress(1, 1, `Uploaded ${file.name}`);
    $("upload-progress").classList.add("complete");
    return { scan, contentType: scan.upload?.fields?.["Content-Type"] || declared || "" };
  }

  async _create(file, contentType, burnedInText) {
    const modality = $("modality").value || undefined;
    try {
      return await this.api.post("/scans", { filename: neutralName(file), content_type: contentType, modality,
        burned_in_text: burnedInText });
    } catch (err) {
      if (err.code === "UNSUPPORTED_CONTENT_TYPE") throw new UploadError("This file type is not accepted.", err.message);
      throw new UploadError("The upload could not be started.", err.message);
    }
  }

  /** Accepted types and the size limit from the contract: the file picker's filter and the hint. */
  configure() {
    const c = this.contract;
    if (!c.known) return;
    $("file").setAttribute("accept", c.acceptList.join(","));
    const limit = c.maxUploadBytes ? `, up to ${formatBytes(c.maxUploadBytes)}` : "";
    const study = c.maxStudyFiles ? ` A folder or several slices are read as one study (at most ${c.maxStudyFiles} files, ${formatBytes(c.maxStudyBytes)}).` : "";
    $("file-hint").textContent = `One axial slice: ${c.typeNames} (${c.extensions.join(" ")})${limit}.${study} ` +
      "Identifiers are removed in your browser; files are sent straight to encrypted storage.";
  }

  /** Sign-out: the next session gets a new UID salt, and nothing chosen is kept. */
  reset() {
    this.abort?.abort();
    this.study.reset();
    this.uids = new UidMap();
    this.file = null;
    this.prepared = null;
    $("upload-progress").hidden = true;
    $("privacy").hidden = true;
    clear($("privacy"));
    hideMessage($("upload-msg"));
  }
}
