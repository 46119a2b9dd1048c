// The scans view: the upload form, the open scan's live status and result, the viewer, the history.
"use strict";

import { $, h, clear } from "./dom.js";
import { renderResult } from "./result.js";
import { renderViewer } from "./viewer.js";
import { UploadForm } from "./upload.js";
import { FINAL, pollScan } from "./poll.js";
import { History } from "./history.js";
import { privacyResult } from "./privacy.js";
import { StudyView } from "./study.js";

const STATUS_TEXT = {
  PENDING: "Waiting for the upload to reach storage…",
  PROCESSING: "The model is reading the slice…",
};
const STEPS = ["upload", "queued", "reading", "done"];
const NO_UPLOAD_AFTER_MS = 15 * 60_000; // a PENDING scan this old will never get its file
const PREVIEW_REFRESH_MS = 30_000;

export class ScansView {
  constructor(api, contract, router) {
    this.api = api;
    this.contract = contract;
    this.router = router;
    this.localPreview = null; // {scanId, url}: a browser-side preview of the file just uploaded
    this.localPrivacy = null; // {scanId, kind, cleaned}: what the browser removed from it
    this.pollAbort = null;
    this.currentScanId = null;
    this.history = new History(api);
    this.uploader = new UploadForm(api, contract, {
      uploaded: (scan, prepared, contentType) => this._uploaded(scan, prepared, contentType),
      created: () => this.history.load(),
      studyUploaded: (study) => { this.router.go(`#/study/${study.study_id}`); },
    });
    this.studies = new StudyView(api, contract, { history: () => this.history.load(), marked: (id) => this.history.mark(id) });
  }

  /** One panel at a time: a scan, a study, or neither (the upload form alone). */
  show(scanId, studyId) {
    this.contract.loaded().then(() => this.uploader.configure());
    if (studyId) {
      if (this.currentScanId) this._hidePanel();
      this.studies.open(studyId);
    } else {
      this.studies.hide();
      if (scanId && scanId !== this.currentScanId) this.openScan(scanId);
      if (!scanId && !this.uploader.busy) this._hidePanel();
    }
    this.history.load();
  }

  _uploaded(scan, prepared, contentType) {
    // The preview is made from the bytes that were sent (metadata-free, same pixels).
    if (/^image\/(png|jpeg)$/.test(contentType)) this._setLocalPreview(scan.scan_id, prepared.blob);
    this.localPrivacy = { scanId: scan.scan_id, kind: prepared.kind, cleaned: prepared.cleaned };
    this.router.go(`#/scan/${scan.scan_id}`); // opens the scan panel and starts polling
    this.history.load();
  }

  _hidePanel() {
    this.pollAbort?.abort();
    this.currentScanId = null;
    $("scan-panel").hidden = true;
    $("viewer").hidden = true;
    this.history.mark(null);
  }

  _setLocalPreview(scanId, file) {
    if (this.localPreview) URL.revokeObjectURL(this.localPreview.url);
    this.localPreview = { scanId, url: URL.createObjectURL(file) };
  }

  _stepper(status, uploaded = true) {
    const reached = { PENDING: uploaded ? 1 : 0, PROCESSING: 2, DONE: 3, FAILED: 3 }[status] ?? 0;
    const final = FINAL.has(status);
    for (const li of $("stepper").children) {
      const i = STEPS.indexOf(li.dataset.step);
      li.classList.toggle("done", i < reached || (i === reached && final));
      li.classList.toggle("current", i === reached && !final);
      li.classList.toggle("failed", status === "FAILED" && i === 3);
      if (i === reached && !final) li.setAttribute("aria-current", "step"); else li.removeAttribute("aria-current");
    }
  }

  /** The panel for a scan being opened: id, empty result, "Loading…". */
  _openPanel(scanId) {
    const panel = $("scan-panel");
    panel.hidden = false;
    panel.dataset.scanId = scanId;
    panel.dataset.status = "";
    $("scan-h").textContent = "Scan";
    $("scan-id").textContent = `#${scanId.slice(-8)}`;
    $("scan-id").title = scanId;
    $("stepper").hidden = false;
    clear($("result"));
    $("viewer").hidden = true;
    const status = $("scan-status");
    status.className = "scan-status working";
    status.textContent = "Loading…";
  }

  async openScan(scanId) {
    this.pollAbort?.abort();
    const controller = new AbortController();
    this.pollAbort = controller;
    this.currentScanId = scanId;
    this.history.mark(scanId);
    this._openPanel(scanId);
    const fresh = this.localPreview?.scanId === scanId; // just uploaded here: the file did reach storage
    let abandoned = false;
    try {
      await this.contract.loaded(); // the result and viewer read texts and presets from it
      const scan = await pollScan(this.api, scanId, controller.signal, (s, elapsed) => {
        $("scan-panel").dataset.status = s.status;
        this._stepper(s.status, fresh || s.status !== "PENDING");
        $("scan-status").textContent = `${STATUS_TEXT[s.status] || s.status} (${Math.round(elapsed / 1000)} s)`;
        abandoned = s.status === "PENDING" && !fresh && Date.now() - Date.parse(s.created_at) > NO_UPLOAD_AFTER_MS;
        return !abandoned;
      });
      if (FINAL.has(scan.status)) this._showFinal(scan);
      else this._stopped(abandoned);
    } catch (err) {
      if (err.name !== "AbortError" && !controller.signal.aborted) this._loadFailed(err);
    }
  }

  /** Polling ended without a final status. */
  _stopped(abandoned) {
    const status = $("scan-status");
    status.className = "scan-status";
    status.textContent = abandoned
      ? this.contract.error("UPLOAD_NOT_RECEIVED", "No file was received for this scan.")
      : "Still processing. It will appear in “My recent scans” when it is ready.";
  }

  _loadFailed(err) {
    const notFound = err.status === 404;
    $("scan-status").className = "scan-status";
    $("scan-status").textContent = "";
    $("stepper").hidden = true;
    clear($("result")).append(h("div", { class: "alert alert-error", role: "alert" },
      h("strong", { text: notFound ? "Scan not found." : "Could not load this scan." }),
      h("span", { class: "alert-detail", text: notFound ? "There is no scan with this id for your account." : err.message })));
  }

  _showFinal(scan) {
    $("scan-panel").dataset.status = scan.status;
    this._stepper(scan.status);
    const status = $("scan-status");
    status.className = "scan-status";
    status.textContent = scan.status === "DONE" ? "Reading complete." : "The scan could not be read.";
    const local = this.localPreview?.scanId === scan.scan_id ? this.localPreview.url : null;
    renderResult($("result"), scan, this.contract);
    const privacy = scan.status === "DONE" ? privacyResult(scan, this.localPrivacy?.scanId === scan.scan_id ? this.localPrivacy : null) : null;
    if (privacy) $("result").querySelector(".result-card .meta")?.before(privacy);
    this._renderViewer(scan, local);
    $("scan-h").textContent = scan.status === "DONE" ? "Model output" : "Scan not read";
    this.history.load();
  }

  _renderViewer(scan, localUrl) {
    const presets = this.contract.windowPresets;
    renderViewer($("viewer"), scan, { localUrl, presets, onExpired: () => {
      // Preview links are short-lived: fetch the scan again (at most every 30 s) for fresh ones.
      if (this.currentScanId !== scan.scan_id || Date.now() - (this.previewsFetchedAt || 0) < PREVIEW_REFRESH_MS) return false;
      this.previewsFetchedAt = Date.now();
      this.api.get(`/scans/${encodeURIComponent(scan.scan_id)}`)
        .then((fresh) => { if (this.currentScanId === scan.scan_id) this._renderViewer(fresh, localUrl); })
        .catch(() => renderViewer($("viewer"), scan, { localUrl, presets }));
      return true;
    } });
  }

  reset() {
    this.pollAbort?.abort();
    this.studies.reset();
    this.uploader.reset();
    this.history.reset();
    this.currentScanId = null;
    clear($("result"));
    $("scan-panel").hidden = true;
    $("viewer").hidden = true;
  }
}
