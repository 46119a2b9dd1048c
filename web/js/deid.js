// De-identification in the browser, before anything is uploaded.
//
// DICOM: the server's rules (GET /contract -> deidentification, the same file the server applies)
// on every element at any depth, with dcmjs: X remove, Z empty, D dummy, U a new UID (the same
// new UID for the same old one within this session, so one series still groups); private, overlay
// and curve groups removed; the file marked PatientIdentityRemoved = YES, "<method> (browser)".
// The pixel data element is copied byte for byte from the original file (native, multi-frame or
// encapsulated RLE/JPEG fragments alike); only the header before it is rewritten, with the same
// transfer syntax. The result is parsed again and checked before it may leave the browser.
// PNG/JPEG/TIFF: metadata stripped with the pixels unchanged (imagemeta.js).
// Both: a warning when text may be burned into the pixels, which no header edit removes.
"use strict";

import { StripError, stripJpeg, stripPng, stripTiff, textLikeCorners } from "./imagemeta.js";

export class DeidError extends Error {}

const DCMJS_URL = new URL("../vendor/dcmjs.es.js", import.meta.url).href;
let dcmjsPromise = null;

/** dcmjs (vendored by infra/build_web.py), loaded on the first DICOM file. */
export function loadDcmjs() {
  dcmjsPromise ||= import(DCMJS_URL).then((dcmjs) => {
    // dcmjs's validation log reports how the input departs from the standard (e.g. an implicit-VR
    // "US or SS" element read as US, bytes unchanged) as console errors; the page checks its own output.
    dcmjs.log.getLogger("validation.dcmjs").setLevel("silent");
    return dcmjs;
  }).catch((err) => {
    dcmjsPromise = null;
    throw new DeidError(`the DICOM library could not be loaded (${err.message})`);
  });
  return dcmjsPromise;
}

// ---- UIDs ---------------------------------------------------------------------------------------
function hex(bytes) { return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(""); }

/** New UIDs for one upload session: "<root><decimal of the first 120 bits of SHA-256(salt:uid)>".
 * The salt is random, kept in memory only and never sent, so the old UID cannot be recovered. */
export class UidMap {
  constructor() {
    this.salt = hex(crypto.getRandomValues(new Uint8Array(16)));
    this.cache = new Map();
  }

  replace(uid, root) {
    const key = `${root}|${uid}`;
    if (!this.cache.has(key)) {
      this.cache.set(key, crypto.subtle.digest("SHA-256", new TextEncoder().encode(`${this.salt}:${uid}`))
        .then((digest) => root + BigInt(`0x${hex(new Uint8Array(digest).subarray(0, 15))}`).toString(10)));
    }
    return this.cache.get(key);
  }
}

// ---- the rules ----------------------------------------------------------------------------------
/** The contract's rules, compiled against dcmjs's dictionary: {actions: tag -> [category, action], ...}. */
function compileRules(rules, dcmjs) {
  const names = dcmjs.data.DicomMetaDictionary.nameMap;
  const actions = new Map();
  for (const [category, elements] of Object.entries(rules.categories || {})) {
    for (const [keyword, action] of Object.entries(elements)) {
      const entry = names[keyword] || names[`RETIRED_${keyword}`]; // dcmjs prefixes retired keywords
      if (entry) actions.set(entry.tag.replace(/[(),]/g, "").toUpperCase(), [category, action]);
    }
  }
  const groups = [];
  for (const [category, spec] of Object.entries(rules.groups || {})) {
    const range = /0x([0-9a-f]+)\s*-\s*0x([0-9a-f]+)/i.exec(spec);
    if (range) groups.push([category, (g) => g >= parseInt(range[1], 16) && g <= parseInt(range[2], 16)]);
    else if (/odd/i.test(spec)) groups.push([category, (g) => g % 2 === 1]);
  }
  if (!actions.size || !rules.mark?.DeidentificationMethod) throw new DeidError("the de-identification rules are incomplete");
  // Any other person name, date or time, whatever its tag (the lists cannot name every one).
  const types = new Map(Object.entries(rules.value_types || {}));
  return { actions, types, groups, dummy: rules.dummy || "ANONYMOUS", root: rules.uid_root || "2.25.",
    method: `${rules.mark.DeidentificationMethod} (browser)` };
}

function groupCategory(compiled, key) {
  const group = parseInt(key.slice(0, 4), 16);
  for (const [category, matches] of compiled.groups) if (matches(group)) return category;
  return null;
}

const valueText = (v) => (v !== null && typeof v === "object" ? String(v.Alphabetic ?? "") : String(v ?? ""));

function isEmpty(element) {
  const values = element.Value;
  if (!Array.isArray(values)) return values === undefined || values === null || values === "";
  return values.length === 0 || (values.length === 1 && element.vr !== "SQ" && valueText(values[0]) === "");
}

/** [category, action] for an element: its tag's rule, else, when it holds a value, its value type's
 * (an empty unlisted name or date identifies no one), else undefined. */
const ruleFor = (compiled, key, element) =>
  compiled.actions.get(key) || (isEmpty(element) ? undefined : compiled.types.get(element.vr));

/** As the server decides (reader/imaging/deid.py): does this element still identify anyone? */
function stillIdentifying(compiled, action, element) {
  if (action === "X") return true;
  if (isEmpty(element)) return false;
  const text = (element.Value || []).map(valueText).join("\\");
  if (action === "D") return text !== compiled.dummy;
  if (action === "U") return !text.startsWith(compiled.root);
  return true; // Z: any value
}

/** Counts per category of identifying elements, sequences included (the server's own count). */
export function identifyingCounts(compiled, dict, meta) {
  const counts = {};
  const bump = (category) => { counts[category] = (counts[category] || 0) + 1; };
  const visit = (dataset) => {
    for (const [key, element] of Object.entries(dataset)) {
      const category = groupCategory(compiled, key);
      const rule = ruleFor(compiled, key, element);
      if (category) bump(category);
      else if (rule && stillIdentifying(compiled, rule[1], element)) bump(rule[0]);
      if (element.vr === "SQ") for (const item of element.Value || []) visit(item);
    }
  };
  visit(dict);
  const mediaUid = meta?.["00020003"];
  if (mediaUid && !valueText(mediaUid.Value?.[0]).startsWith(compiled.root)) bump("uids");
  return counts;
}

async function applyRules(compiled, dataset, uids) {
  for (const key of Object.keys(dataset)) {
    const element = dataset[key];
    if (key.endsWith("0000") || groupCategory(compiled, key)) { // group lengths are stale once anything goes
      delete dataset[key];
      continue;
    }
    const rule = ruleFor(compiled, key, element);
    if (rule && stillIdentifying(compiled, rule[1], element)) {
      const action = rule[1];
      delete element._rawValue;
      if (action === "X") { delete dataset[key]; continue; }
      if (action === "Z") element.Value = [];
      else if (action === "D") element.Value = [element.vr === "PN" ? { Alphabetic: compiled.dummy } : compiled.dummy];
      else if (action === "U") element.Value = await Promise.all((element.Value || []).map((uid) => uids.replace(valueText(uid), compiled.root)));
    }
    if (element.vr === "SQ") for (const item of element.Value || []) await applyRules(compiled, item, uids);
  }
}

// ---- the file's layout: where the pixel data element lies ----------------------------------------
const IMPLICIT_LE = "1.2.840.10008.1.2";
const EXPLICIT_BE = "1.2.840.10008.1.2.2";
const DEFLATED = new Set(["1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.100.1"]);
const NATIVE = new Set([IMPLICIT_LE, "1.2.840.10008.1.2.1", EXPLICIT_BE]);
const LONG_VRS = new Set(["OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"]);
const UNDEFINED = 0xffffffff;
const PIXEL_DATA = 0x7fe00010;

class Walker {
  constructor(bytes, little) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.little = little;
  }

  need(end) { if (end > this.bytes.length) throw new DeidError("the DICOM file is truncated"); }

  tag(pos) {
    this.need(pos + 4);
    return ((this.view.getUint16(pos, this.little) << 16) | this.view.getUint16(pos + 2, this.little)) >>> 0;
  }

  /** {tag, vr, length, start} of the element (or item) at ``pos``. */
  header(pos, explicit) {
    const tag = this.tag(pos);
    this.need(pos + 8);
    if (tag >>> 16 === 0xfffe || !explicit) return { tag, vr: null, length: this.view.getUint32(pos + 4, this.little), start: pos + 8 };
    const vr = String.fromCharCode(this.bytes[pos + 4], this.bytes[pos + 5]);
    if (!LONG_VRS.has(vr)) return { tag, vr, length: this.view.getUint16(pos + 6, this.little), start: pos + 8 };
    this.need(pos + 12);
    return { tag, vr, length: this.view.getUint32(pos + 8, this.little), start: pos + 12 };
  }

  /** The offset just after the element at ``pos``. */
  skip(pos, explicit) {
    const h = this.header(pos, explicit);
    if (h.length !== UNDEFINED) { this.need(h.start + h.length); return h.start + h.length; }
    return this.skipItems(h.start, explicit && h.vr !== "UN"); // UN of undefined length: implicit VR inside
  }

  skipItems(pos, explicit) {
    for (;;) {
      const item = this.header(pos, explicit);
      if (item.tag === 0xfffee0dd) return item.start;
      if (item.tag !== 0xfffee000) throw new DeidError("damaged DICOM sequence");
      if (item.length !== UNDEFINED) { this.need(item.start + item.length); pos = item.start + item.length; continue; }
      pos = item.start;
      while (this.tag(pos) !== 0xfffee00d) pos = this.skip(pos, explicit);
      pos += 8;
    }
  }
}

/** Transfer syntax, and where the top-level pixel data element starts and ends (-1 when none). */
function layout(bytes) {
  if (bytes.length < 132 || String.fromCharCode(...bytes.subarray(128, 132)) !== "DICM") {
    throw new DeidError("this DICOM file has no file header (DICM)");
  }
  const meta = new Walker(bytes, true);
  let pos = 132;
  let syntax = "";
  while (pos + 8 <= bytes.length && meta.view.getUint16(pos, true) === 0x0002) {
    const h = meta.header(pos, true);
    if (h.tag === 0x00020010) syntax = String.fromCharCode(...bytes.subarray(h.start, h.start + h.length)).replace(/[\0 ]+$/, "");
    pos = meta.skip(pos, true);
  }
  if (!syntax) throw new DeidError("this DICOM file names no transfer syntax");
  if (DEFLATED.has(syntax)) throw new DeidError("deflated DICOM files are not supported in the browser");
  const walker = new Walker(bytes, syntax !== EXPLICIT_BE);
  const explicit = syntax !== IMPLICIT_LE;
  while (pos < bytes.length) {
    if (walker.tag(pos) === PIXEL_DATA) {
      const h = walker.header(pos, explicit);
      return { syntax, pixelStart: pos, pixelValue: h.start, pixelLength: h.length, pixelEnd: walker.skip(pos, explicit), little: walker.little };
    }
    pos = walker.skip(pos, explicit);
  }
  return { syntax, pixelStart: -1, pixelEnd: -1 };
}

// ---- burned-in text in DICOM ----------------------------------------------------------------------
const first = (dict, key) => dict[key]?.Value?.[0];

/** The corners that look like text in the middle frame of native greyscale pixels; null when not checked. */
function dicomTextCorners(bytes, where, dict) {
  if (!NATIVE.has(where.syntax) || where.pixelStart < 0 || where.pixelLength === UNDEFINED) return null;
  const rows = Number(first(dict, "00280010"));
  const cols = Number(first(dict, "00280011"));
  const bits = Number(first(dict, "00280100"));
  const samples = Number(first(dict, "00280002") ?? 1);
  const frames = Number(first(dict, "00280008") ?? 1) || 1;
  if (!(rows > 0 && cols > 0) || samples !== 1 || (bits !== 8 && bits !== 16)) return null;
  const size = rows * cols * (bits / 8);
  const offset = where.pixelValue + Math.floor(frames / 2) * size;
  if (offset + size > where.pixelValue + where.pixelLength) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, size);
  const signed = Number(first(dict, "00280103")) === 1;
  const invert = String(first(dict, "00280004") || "").trim() === "MONOCHROME1";
  const grey = new Float32Array(rows * cols);
  for (let i = 0; i < grey.length; i += 1) {
    const v = bits === 8 ? (signed ? view.getInt8(i) : view.getUint8(i))
      : (signed ? view.getInt16(2 * i, where.little) : view.getUint16(2 * i, where.little));
    grey[i] = invert ? -v : v;
  }
  return textLikeCorners(grey, cols, rows);
}

// ---- DICOM --------------------------------------------------------------------------------------
/**
 * De-identify one DICOM file with the contract's rules. ``uids`` is the session's UidMap.
 * Returns {bytes, removed: {category: n}, burnedIn: {flag, corners, checked}}. Throws DeidError when
 * it cannot (no DICM header, deflated, damaged): the caller then says so and lets the clinician choose.
 */
export async function deidentifyDicom(input, rules, uids, dcmjs) {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  const compiled = compileRules(rules, dcmjs);
  const where = layout(bytes);
  const headerEnd = where.pixelStart < 0 ? bytes.length : where.pixelStart;
  let file;
  try {
    file = dcmjs.data.DicomMessage.readFile(bytes.slice(0, headerEnd).buffer, {});
  } catch (err) {
    throw new DeidError(`the DICOM header could not be read (${err.message})`);
  }
  const removed = identifyingCounts(compiled, file.dict, file.meta);
  // BurnedInAnnotation: as on the server, any value but NO counts (the standard allows only YES or NO).
  const burnedValues = (file.dict["00280301"]?.Value || []).map((v) => String(v).trim().toUpperCase()).filter(Boolean);
  const burnedIn = {
    flag: burnedValues.length > 0 && burnedValues.join("\\") !== "NO",
    corners: dicomTextCorners(bytes, where, file.dict),
  };
  await applyRules(compiled, file.dict, uids);
  const sop = first(file.dict, "00080018");
  const media = file.meta["00020003"];
  if (media) {
    media.Value = [sop ? valueText(sop) : await uids.replace(valueText(media.Value?.[0]), compiled.root)];
    delete media._rawValue;
  }
  file.dict["00120062"] = { vr: "CS", Value: ["YES"] };
  file.dict["00120063"] = { vr: "LO", Value: [compiled.method] };
  let header;
  try {
    header = new Uint8Array(file.write({ allowInvalidVRLength: true, fragmentMultiframe: false }));
  } catch (err) {
    throw new DeidError(`the de-identified DICOM file could not be written (${err.message})`);
  }
  const pixels = where.pixelStart < 0 ? new Uint8Array(0) : bytes.subarray(where.pixelStart, where.pixelEnd);
  const out = new Uint8Array(header.length + pixels.length);
  out.set(header, 0);
  out.set(pixels, header.length);
  // What leaves the browser is read back and checked with the same rules: nothing left, marked.
  const check = dcmjs.data.DicomMessage.readFile(header.slice().buffer, {});
  const left = identifyingCounts(compiled, check.dict, check.meta);
  if (Object.keys(left).length || first(check.dict, "00120063") !== compiled.method
      || first(check.meta, "00020010") !== first(file.meta, "00020010")) {
    throw new DeidError(`identifiers were left after de-identification (${Object.keys(left).join(", ") || "mark"})`);
  }
  return { bytes: out, removed, burnedIn };
}

// ---- images -------------------------------------------------------------------------------------
/** Corners that look like text in a PNG/JPEG, decoded by the browser (null when it cannot decode). */
async function imageTextCorners(blob) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob);
  } catch {
    return null;
  }
  const scale = Math.min(1, 1024 / Math.max(bitmap.width, bitmap.height));
  const width = Math.max(1, Math.round(bitmap.width * scale));
  const height = Math.max(1, Math.round(bitmap.height * scale));
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const grey = new Float32Array(width * height);
  for (let i = 0; i < grey.length; i += 1) grey[i] = 0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2];
  return textLikeCorners(grey, width, height);
}

/** The file's kind from its first bytes, else from its declared type or name. */
export function kindOf(bytes, contentType = "", name = "") {
  const at = (offset, sig) => sig.every((b, i) => bytes[offset + i] === b);
  if (bytes.length >= 132 && at(128, [0x44, 0x49, 0x43, 0x4d])) return "dicom";
  if (at(0, [0x89, 0x50, 0x4e, 0x47])) return "png";
  if (at(0, [0xff, 0xd8, 0xff])) return "jpeg";
  if (at(0, [0x49, 0x49, 0x2a, 0x00]) || at(0, [0x4d, 0x4d, 0x00, 0x2a]) || at(0, [0x49, 0x49, 0x2b, 0x00])) return "tiff";
  if (/dicom/.test(contentType) || /\.(dcm|dicom)$/i.test(name)) return "dicom";
  return "other";
}

/**
 * Prepare one chosen file for upload: what will be sent and what was removed.
 * Returns {kind, blob, removed: {what: n}, cleaned, problem, burnedIn: {flag, corners}, checkedPixels}.
 * ``cleaned`` is false (with ``problem``) when identifiers could not be removed here; the blob is
 * then the original file, which the server de-identifies (DICOM) and deletes after reading.
 */
export async function prepareFile(file, { rules, uids, contentType = "" }) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const kind = kindOf(bytes, contentType || file.type, file.name);
  const result = { kind, blob: file, removed: {}, cleaned: false, problem: "", burnedIn: { flag: false, corners: null } };
  try {
    if (kind === "dicom") {
      if (!rules) throw new DeidError("the de-identification rules could not be loaded");
      const done = await deidentifyDicom(bytes, rules, uids, await loadDcmjs());
      Object.assign(result, { blob: new Blob([done.bytes], { type: "application/dicom" }), removed: done.removed, burnedIn: done.burnedIn });
    } else if (kind === "png" || kind === "jpeg" || kind === "tiff") {
      const done = { png: stripPng, jpeg: stripJpeg, tiff: stripTiff }[kind](bytes);
      const type = { png: "image/png", jpeg: "image/jpeg", tiff: "image/tiff" }[kind];
      result.blob = new Blob([done.bytes], { type });
      result.removed = done.removed;
      result.burnedIn.corners = kind === "tiff" ? null : await imageTextCorners(result.blob);
    } else {
      return result; // not an image StrokeLens reads: the server refuses it, nothing to clean
    }
    result.cleaned = true;
  } catch (err) {
    if (!(err instanceof DeidError || err instanceof StripError)) throw err;
    result.problem = err.message;
  }
  return result;
}
