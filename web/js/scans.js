// The scans view: upload (presigned POST straight to S3), live status, result, viewer, history.
"use strict";

import { $, h, clear, sleep, showMessage, hideMessage } from "./dom.js";
import { formatBytes, formatDate } from "./format.js";
import { renderResult, resultSummary } from "./result.js";
import { renderViewer } from "./viewer.js";

const ACCEPTED_TYPES = new Set(["image/png", "image/jpeg", "image/tiff", "application/dicom"]);
const EXTENSION_TYPES = { ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".tif": "image/tiff",
  ".tiff": "image/tiff", ".dcm": "application/dicom", ".dicom": "application/dicom" };
const MAX_BYTES_KEY = "strokelens.maxBytes";
const POLL_FIRST_MS = 400;
const POLL_MAX_MS = 4000;
const POLL_GIVE_UP_MS = 180_000;
const FINAL = new Set(["DONE", "FAILED"]);

const STATUS_TEXT = {
  PENDING: "Waiting for the upload to reach storage…",
  PROCESSING: "The model is reading the slice…",
  DONE: "Reading complete.",
  FAILED: "The scan could not be read.",
};

class UploadError extends Error {
  constructor(message, detail, kind = "error") {
    super(message);
    this.detail = detail;
    this.kind = kind;
  }
}

/** What the file is: the browser's type when we accept it, else the extension, else its magic bytes. */
async function contentTypeOf(file) {
  if (ACCEPTED_TYPES.has(file.type)) return file.type;
  const ext = (file.name.toLowerCase().match(/\.[a-z0-9]+$/) || [""])[0];
  if (EXTENSION_TYPES[ext]) return EXTENSION_TYPES[ext];
  const head = new Uint8Array(await file.slice(0, 132).arrayBuffer());
  const at = (offset, bytes) => bytes.every((b, i) => head[offset + i] === b);
  if (head.length >= 132 && at(128, [0x44, 0x49, 0x43, 0x4d])) return "application/dicom"; // "DICM": extension-less DICOM
  if (at(0, [0x89, 0x50, 0x4e, 0x47])) return "image/png";
  if (at(0, [0xff, 0xd8, 0xff])) return "image/jpeg";
  if (at(0, [0x49, 0x49, 0x2a, 0x00]) || at(0, [0x4d, 0x4d, 0x00, 0x2a])) return "image/tiff";
  return file.type || "";
}

function tooLargeError(size, maxBytes, byServer) {
  // The storage's own limit is authoritative: quote max_bytes only when it agrees with the refusal.
  const limit = maxBytes && size > maxBytes ? ` (${formatBytes(maxBytes)})` : "";
  return new UploadError(
    `This file is larger than the upload limit${limit}.`,
    `${byServer ? "The storage service refused it" : "It was not sent"}${size ? `: the file is ${formatBytes(size)}` : ""}. ` +
      "Upload a single slice, exported as PNG, JPEG or uncompressed DICOM.");
}

const S3_MESSAGES = {
  EntityTooSmall: ["The file is empty.", "Export the scan again and re-upload it."],
  AccessDenied: ["The storage service refused this upload.", "The upload link may have expired or did not match this file. Please try again."],
  ExpiredToken: ["The upload link has expired.", "Please try the upload again."],
  RequestTimeout: ["The upload took too long and was stopped.", "Check your connection and try again."],
  InvalidPolicyDocument: ["The upload link is not valid.", "Please try again."],
};

/** POST the file to the presigned S3 form; resolves on 2xx, rejects with a clinician-readable error. */
function postToStorage(upload, file, maxBytes, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [key, value] of Object.entries(upload.fields || {})) form.append(key, value);
    form.append("file", file); // must be the last field
    const xhr = new XMLHttpRequest();
    xhr.open("POST", upload.url);
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) { onProgress(1, 1); resolve(); return; }
      let code = "";
      try {
        const xml = new DOMParser().parseFromString(xhr.responseText || "", "application/xml");
        code = xml.querySelector("Error > Code")?.textContent?.trim() || "";
      } catch { /* not XML */ }
      if (code === "EntityTooLarge") { reject(tooLargeError(file.size, maxBytes, true)); return; }
      const [message, detail] = S3_MESSAGES[code] || ["The storage service refused this upload.", `Please try again (${code || "HTTP " + xhr.status}).`];
      reject(new UploadError(message, detail));
    });
    xhr.addEventListener("error", () => reject(new UploadError("The upload failed: the storage service could not be reached.",
      file.size > maxBytes ? `The file (${formatBytes(file.size)}) is also over the upload limit (${formatBytes(maxBytes)}).` : "Check your connection and try again.")));
    xhr.addEventListener("abort", () => reject(new UploadError("Upload cancelled.", "Nothing was read. Choose a file to start again.", "info")));
    signal.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(form);
  });
}

export class ScansView {
  constructor(api, router) {
    this.api = api;
    this.router = router;
    this.file = null;
    this.localPreview = null; // {scanId, url}: a browser-side preview of the file just uploaded
    this.uploadAbort = null;
    this.pollAbort = null;
    this.historyNext = null;
    this.currentScanId = null;
    this._bind();
  }

  _bind() {
    const input = $("file");
    const zone = $("dropzone");
    input.addEventListener("change", () => this._choose(input.files[0] || null));
    for (const type of ["dragenter", "dragover"]) {
      zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("dragging"); });
    }
    for (const type of ["dragleave", "dragend"]) zone.addEventListener(type, () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("dragging");
      const file = e.dataTransfer?.files?.[0];
      if (file) this._choose(file);
    });
    // Dropping a file anywhere else must not navigate away from the app.
    window.addEventListener("dragover", (e) => e.preventDefault());
    window.addEventListener("drop", (e) => e.preventDefault());
    $("upload-form").addEventListener("submit", (e) => { e.preventDefault(); this.upload(); });
    $("cancel-btn").addEventListener("click", () => this.uploadAbort?.abort());
    $("history-refresh").addEventListener("click", () => this.loadHistory());
    $("history-more").addEventListener("click", () => this.loadHistory(true));
  }

  _choose(file) {
    this.file = file;
    hideMessage($("upload-msg"));
    $("upload-progress").hidden = true;
    const chosen = $("file-chosen");
    clear(chosen);
    if (file) {
      chosen.append(h("span", { class: "file-name", text: file.name }), h("span", { class: "muted", text: ` · ${formatBytes(file.size)}` }));
      const known = Number(sessionStorage.getItem(MAX_BYTES_KEY));
      if (known && file.size > known) {
        showMessage($("upload-msg"), "warning", `This file is larger than the upload limit (${formatBytes(known)}).`,
          "It will be refused. Upload a single slice, exported as PNG, JPEG or uncompressed DICOM.");
      }
    }
    $("dropzone").classList.toggle("has-file", Boolean(file));
  }

  show(scanId) {
    if (scanId && scanId !== this.currentScanId) this.openScan(scanId);
    if (!scanId && !this.uploadAbort) this._hidePanel();
    this.loadHistory();
  }

  _hidePanel() {
    this.pollAbort?.abort();
    this.currentScanId = null;
    $("scan-panel").hidden = true;
    $("viewer").hidden = true;
    this._markHistory();
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
    $("modality").disabled = on;
    $("cancel-btn").hidden = !on;
    $("dropzone").classList.toggle("disabled", on);
  }

  async upload() {
    const msg = $("upload-msg");
    hideMessage(msg);
    const file = this.file;
    if (!file) {
      showMessage(msg, "error", "Choose a file first.", "Drag a slice onto the box above or use “Choose a file”.");
      $("file").focus();
      return;
    }
    const controller = new AbortController();
    this.uploadAbort = controller;
    this._busy(true);
    $("upload-progress").hidden = false;
    $("upload-progress").classList.remove("complete");
    this._setProgress(0, 1, `Uploading ${file.name}`);
    let scan = null;
    try {
      const contentType = await contentTypeOf(file);
      const modality = $("modality").value || undefined;
      try {
        scan = await this.api.post("/scans", { filename: file.name, content_type: contentType, modality });
      } catch (err) {
        if (err.code === "UNSUPPORTED_CONTENT_TYPE") throw new UploadError("This file type is not accepted.", err.message);
        throw new UploadError("The upload could not be started.", err.message);
      }
      const maxBytes = Number(scan.max_bytes) || 0;
      if (maxBytes) sessionStorage.setItem(MAX_BYTES_KEY, String(maxBytes));
      if (maxBytes && file.size > maxBytes) throw tooLargeError(file.size, maxBytes, false);
      if (controller.signal.aborted) throw new UploadError("Upload cancelled.", "Nothing was read.", "info");
      await postToStorage(scan.upload, file, maxBytes, (loaded, total) => this._setProgress(loaded, total), controller.signal);
      this._setProgress(1, 1, `Uploaded ${file.name}`);
      $("upload-progress").classList.add("complete");
      if (/^image\/(png|jpeg)$/.test(contentType)) this._setLocalPreview(scan.scan_id, file);
      this.router.go(`#/scan/${scan.scan_id}`); // opens the scan panel and starts polling
      this.loadHistory();
    } catch (err) {
      $("upload-progress").hidden = true;
      showMessage(msg, err.kind || "error", err.message, err.detail);
      if (scan) this.loadHistory();
    } finally {
      this.uploadAbort = null;
      this._busy(false);
    }
  }

  _setLocalPreview(scanId, file) {
    if (this.localPreview) URL.revokeObjectURL(this.localPreview.url);
    this.localPreview = { scanId, url: URL.createObjectURL(file) };
  }

  _stepper(status, uploaded = true) {
    const order = ["upload", "queued", "reading", "done"];
    const reached = { PENDING: uploaded ? 1 : 0, PROCESSING: 2, DONE: 3, FAILED: 3 }[status] ?? 0;
    for (const li of $("stepper").children) {
      const i = order.indexOf(li.dataset.step);
      li.classList.toggle("done", i < reached || (i === reached && FINAL.has(status)));
      li.classList.toggle("current", i === reached && !FINAL.has(status));
      li.classList.toggle("failed", status === "FAILED" && i === 3);
      if (i === reached && !FINAL.has(status)) li.setAttribute("aria-current", "step"); else li.removeAttribute("aria-current");
    }
  }

  async openScan(scanId) {
    this.pollAbort?.abort();
    const controller = new AbortController();
    this.pollAbort = controller;
    this.currentScanId = scanId;
    this._markHistory();
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
    const started = Date.now();
    let delay = POLL_FIRST_MS;
    const freshUpload = this.localPreview?.scanId === scanId;
    try {
      for (;;) {
        const scan = await this.api.get(`/scans/${encodeURIComponent(scanId)}`);
        if (controller.signal.aborted) return;
        panel.dataset.status = scan.status;
        this._stepper(scan.status, freshUpload || scan.status !== "PENDING");
        if (FINAL.has(scan.status)) {
          this._showFinal(scan);
          return;
        }
        const elapsed = Date.now() - started;
        status.textContent = `${STATUS_TEXT[scan.status] || scan.status} (${Math.round(elapsed / 1000)} s)`;
        if (scan.status === "PENDING" && !freshUpload && Date.now() - Date.parse(scan.created_at) > 15 * 60_000) {
          status.className = "scan-status";
          status.textContent = "No file was received for this scan (the upload was cancelled, refused or never finished).";
          return;
        }
        if (elapsed > POLL_GIVE_UP_MS) {
          status.className = "scan-status";
          status.textContent = "Still processing. It will appear in “My recent scans” when it is ready.";
          return;
        }
        await sleep(delay, controller.signal);
        delay = Math.min(POLL_MAX_MS, Math.round(delay * 1.5));
      }
    } catch (err) {
      if (err.name === "AbortError" || controller.signal.aborted) return;
      status.className = "scan-status";
      $("stepper").hidden = true;
      clear($("result")).append(h("div", { class: "alert alert-error", role: "alert" },
        h("strong", { text: err.status === 404 ? "Scan not found." : "Could not load this scan." }),
        h("span", { class: "alert-detail", text: err.status === 404 ? "There is no scan with this id for your account." : err.message })));
      status.textContent = "";
    }
  }

  _showFinal(scan) {
    const status = $("scan-status");
    status.className = "scan-status";
    status.textContent = scan.status === "DONE" ? "Reading complete." : "The scan could not be read.";
    const local = this.localPreview?.scanId === scan.scan_id ? this.localPreview.url : null;
    renderResult($("result"), scan);
    this._renderViewer(scan, local);
    $("scan-h").textContent = scan.status === "DONE" ? "Model output" : "Scan not read";
    this.loadHistory();
  }

  _renderViewer(scan, local) {
    renderViewer($("viewer"), scan, local, () => {
      // Preview links are short-lived: fetch the scan again (at most every 30 s) for fresh ones.
      if (this.currentScanId !== scan.scan_id || Date.now() - (this.previewsFetchedAt || 0) < 30_000) return false;
      this.previewsFetchedAt = Date.now();
      this.api.get(`/scans/${encodeURIComponent(scan.scan_id)}`)
        .then((fresh) => { if (this.currentScanId === scan.scan_id) this._renderViewer(fresh, local); })
        .catch(() => renderViewer($("viewer"), scan, local, null));
      return true;
    });
  }

  // ---- history ----------------------------------------------------------------------------
  async loadHistory(more = false) {
    const list = $("history");
    const msg = $("history-msg");
    if (!more) this.historyNext = null;
    msg.textContent = more ? "Loading older scans…" : (list.children.length ? "" : "Loading…");
    try {
      const query = `/scans?limit=20${more && this.historyNext ? `&next=${encodeURIComponent(this.historyNext)}` : ""}`;
      const page = await this.api.get(query);
      const items = (page.scans || []).map((scan) => this._historyItem(scan));
      if (more) list.append(...items); else list.replaceChildren(...items);
      this.historyNext = page.next || null;
      $("history-more").hidden = !this.historyNext;
      msg.textContent = list.children.length ? "" : "No scans yet. Upload a slice to start.";
      this._markHistory();
    } catch (err) {
      msg.textContent = `Could not load your scans: ${err.message}`;
    }
  }

  _historyItem(scan) {
    const summary = resultSummary(scan);
    const link = h("a", { href: `#/scan/${scan.scan_id}`, class: "history-link", dataset: { scanId: scan.scan_id } },
      h("span", { class: "history-top" },
        h("span", { class: "history-date", text: formatDate(scan.created_at, true) }),
        h("span", { class: `badge badge-${summary.tone}`, text: summary.badge })),
      h("span", { class: "history-sub", text: summary.line }));
    return h("li", { dataset: { scanId: scan.scan_id } }, link);
  }

  _markHistory() {
    for (const li of $("history").children) {
      const current = li.dataset.scanId === this.currentScanId;
      li.classList.toggle("current", current);
      const a = li.querySelector("a");
      if (current) a.setAttribute("aria-current", "true"); else a.removeAttribute("aria-current");
    }
  }

  reset() {
    this.pollAbort?.abort();
    this.uploadAbort?.abort();
    this.currentScanId = null;
    clear($("history"));
    clear($("result"));
    $("scan-panel").hidden = true;
    $("viewer").hidden = true;
    $("upload-progress").hidden = true;
    hideMessage($("upload-msg"));
    sessionStorage.removeItem(MAX_BYTES_KEY);
  }
}
