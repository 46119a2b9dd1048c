// Sending bytes to storage: the content type to declare, the neutral name, the presigned POST
// with progress and cancel, and the clinician-readable errors. Shared by the one-slice form
// (upload.js) and studies (studyupload.js).
"use strict";

import { formatBytes } from "./format.js";

export class UploadError extends Error {
  constructor(message, detail, kind = "error") {
    super(message);
    this.detail = detail;
    this.kind = kind;
  }
}

/** The type its first bytes say, for files without a usable type or extension (e.g. DICOM "DICM"). */
async function sniffedType(file) {
  const head = new Uint8Array(await file.slice(0, 132).arrayBuffer());
  const at = (offset, bytes) => bytes.every((b, i) => head[offset + i] === b);
  if (head.length >= 132 && at(128, [0x44, 0x49, 0x43, 0x4d])) return "application/dicom";
  if (at(0, [0x89, 0x50, 0x4e, 0x47])) return "image/png";
  if (at(0, [0xff, 0xd8, 0xff])) return "image/jpeg";
  if (at(0, [0x49, 0x49, 0x2a, 0x00]) || at(0, [0x4d, 0x4d, 0x00, 0x2a])) return "image/tiff";
  return "";
}

/** The content type to declare in POST /scans: the browser's when the contract accepts it; none when
 * only the extension is accepted (the API maps extensions itself); else the sniffed one. Throws when
 * the contract accepts none of these; without a contract the API alone decides. */
export async function declaredType(file, contract) {
  if (contract.acceptsType(file.type)) return file.type;
  if (contract.acceptsName(file.name)) return undefined;
  const sniffed = await sniffedType(file);
  if (!contract.known) return sniffed || file.type || undefined;
  if (contract.acceptsType(sniffed)) return sniffed;
  throw new UploadError("This file type is not accepted.",
    `StrokeLens reads ${contract.typeNames} files (${contract.extensions.join(" ")}). Export the slice in one of these formats.`);
}

/** The advice that ends a size refusal, naming the accepted formats when they are known. */
export function sliceAdvice(contract) {
  return `Upload a single slice${contract.known ? `, exported as ${contract.typeNames}` : ""}.`;
}

export function tooLargeError(size, maxBytes, byServer, advice) {
  // The storage's own limit is authoritative: quote max_bytes only when it agrees with the refusal.
  const limit = maxBytes && size > maxBytes ? ` (${formatBytes(maxBytes)})` : "";
  return new UploadError(
    `This file is larger than the upload limit${limit}.`,
    `${byServer ? "The storage service refused it" : "It was not sent"}${size ? `: the file is ${formatBytes(size)}` : ""}. ${advice}`);
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

/** The name sent with the upload: the extension only (the API maps it to a type), never the
 * clinician's file name, which may carry a patient's name. */
export function neutralName(file) {
  const ext = (String(file.name).toLowerCase().match(/\.[a-z0-9]{1,5}$/) || [""])[0];
  return `slice${ext}`;
}

/** POST the (de-identified) bytes to the presigned S3 form; resolves on 2xx, rejects with a clinician-readable error. */
export function postToStorage(upload, file, name, maxBytes, advice, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [key, value] of Object.entries(upload.fields || {})) form.append(key, value);
    form.append("file", file, name); // must be the last field
    const xhr = new XMLHttpRequest();
    xhr.open("POST", upload.url);
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) { onProgress(1, 1); resolve(); return; }
      const code = s3ErrorCode(xhr);
      if (code === "EntityTooLarge") { reject(tooLargeError(file.size, maxBytes, true, advice)); return; }
      const [message, detail] = S3_MESSAGES[code] || ["The storage service refused this upload.", `Please try again (${code || "HTTP " + xhr.status}).`];
      reject(new UploadError(message, detail));
    });
    xhr.addEventListener("error", () => reject(new UploadError("The upload failed: the storage service could not be reached.",
      maxBytes && file.size > maxBytes ? `The file (${formatBytes(file.size)}) is also over the upload limit (${formatBytes(maxBytes)}).` : "Check your connection and try again.")));
    xhr.addEventListener("abort", () => reject(new UploadError("Upload cancelled.", "Nothing was read. Choose a file to start again.", "info")));
    signal.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(form);
  });
}
