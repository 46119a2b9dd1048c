// Upload: the file goes straight to storage with the presigned POST the API hands out (POST /scans),
// with progress and cancel. The API only hands out the link; S3 enforces the type and size.
"use strict";

import { $, h, clear, showMessage, hideMessage } from "./dom.js";
import { formatBytes } from "./format.js";

const ACCEPTED_TYPES = new Set(["image/png", "image/jpeg", "image/tiff", "application/dicom"]);
const EXTENSION_TYPES = { ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".tif": "image/tiff",
  ".tiff": "image/tiff", ".dcm": "application/dicom", ".dicom": "application/dicom" };
const MAX_BYTES_KEY = "strokelens.maxBytes";

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

/** The S3 error code of a refused POST (an XML body), or "". */
function s3ErrorCode(xhr) {
  try {
    const xml = new DOMParser().parseFromString(xhr.responseText || "", "application/xml");
    return xml.querySelector("Error > Code")?.textContent?.trim() || "";
  } catch {
    return "";
  }
}

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
      const code = s3ErrorCode(xhr);
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

/** The upload form: choose or drop a file, send it, report progress. Hooks: ``uploaded(scan, file,
 * contentType)`` once the storage has the file; ``created()`` when a scan exists but the upload failed. */
export class UploadForm {
  constructor(api, hooks) {
    this.api = api;
    this.hooks = hooks;
    this.file = null;
    this.abort = null; // the AbortController of the upload in flight
    this._bind();
  }

  get busy() { return Boolean(this.abort); }

  _bind() {
    const input = $("file");
    const zone = $("dropzone");
    input.addEventListener("change", () => this.choose(input.files[0] || null));
    for (const type of ["dragenter", "dragover"]) {
      zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("dragging"); });
    }
    for (const type of ["dragleave", "dragend"]) zone.addEventListener(type, () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("dragging");
      const file = e.dataTransfer?.files?.[0];
      if (file) this.choose(file);
    });
    // Dropping a file anywhere else must not navigate away from the app.
    window.addEventListener("dragover", (e) => e.preventDefault());
    window.addEventListener("drop", (e) => e.preventDefault());
    $("upload-form").addEventListener("submit", (e) => { e.preventDefault(); this.upload(); });
    $("cancel-btn").addEventListener("click", () => this.abort?.abort());
  }

  choose(file) {
    this.file = file;
    hideMessage($("upload-msg"));
    $("upload-progress").hidden = true;
    const chosen = clear($("file-chosen"));
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
    this.abort = controller;
    this._busy(true);
    $("upload-progress").hidden = false;
    $("upload-progress").classList.remove("complete");
    this._setProgress(0, 1, `Uploading ${file.name}`);
    let sent = null;
    try {
      sent = await this._send(file, controller.signal);
    } catch (err) {
      $("upload-progress").hidden = true;
      showMessage(msg, err.kind || "error", err.message, err.detail);
      if (err.scan) this.hooks.created();
    } finally {
      this.abort = null;
      this._busy(false);
    }
    if (sent) this.hooks.uploaded(sent.scan, file, sent.contentType);
  }

  /** POST /scans, then the file to storage. Returns {scan, contentType}; errors carry ``scan`` once one exists. */
  async _send(file, signal) {
    const contentType = await contentTypeOf(file);
    const modality = $("modality").value || undefined;
    let scan;
    try {
      scan = await this.api.post("/scans", { filename: file.name, content_type: contentType, modality });
    } catch (err) {
      if (err.code === "UNSUPPORTED_CONTENT_TYPE") throw new UploadError("This file type is not accepted.", err.message);
      throw new UploadError("The upload could not be started.", err.message);
    }
    try {
      const maxBytes = Number(scan.max_bytes) || 0;
      if (maxBytes) sessionStorage.setItem(MAX_BYTES_KEY, String(maxBytes));
      if (maxBytes && file.size > maxBytes) throw tooLargeError(file.size, maxBytes, false);
      if (signal.aborted) throw new UploadError("Upload cancelled.", "Nothing was read.", "info");
      await postToStorage(scan.upload, file, maxBytes, (loaded, total) => this._setProgress(loaded, total), signal);
    } catch (err) {
      err.scan = scan;
      throw err;
    }
    this._setProgress(1, 1, `Uploaded ${file.name}`);
    $("upload-progress").classList.add("complete");
    return { scan, contentType };
  }

  reset() {
    this.abort?.abort();
    $("upload-progress").hidden = true;
    hideMessage($("upload-msg"));
    sessionStorage.removeItem(MAX_BYTES_KEY);
  }
}
