// Metadata stripped from PNG, JPEG and TIFF files in the browser, before upload, with the pixels
// kept bit-exact: PNG keeps only the chunks that make the image, JPEG drops its metadata segments and
// keeps the entropy-coded data as it is, TIFF has its metadata fields blanked in place (the file's
// layout and image data are not moved). And a cheap check for text burned into the image's corners.
"use strict";

export class StripError extends Error {}

// ---- PNG ----------------------------------------------------------------------------------------
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
// The critical chunks, transparency (part of the decoded pixels) and gamma; everything else goes
// (tEXt, zTXt, iTXt, eXIf, tIME, iCCP, pHYs, sBIT, animation chunks, private chunks...).
const PNG_KEEP = new Set(["IHDR", "PLTE", "tRNS", "gAMA", "IDAT", "IEND"]);

/** A PNG with only the chunks that make the image. Returns {bytes, removed: {chunk type: n}}. */
export function stripPng(bytes) {
  if (!PNG_SIGNATURE.every((b, i) => bytes[i] === b)) throw new StripError("not a PNG file");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parts = [bytes.subarray(0, 8)];
  const removed = {};
  let pos = 8;
  let ended = false;
  while (pos + 12 <= bytes.length && !ended) {
    const length = view.getUint32(pos);
    const end = pos + 12 + length;
    if (end > bytes.length) throw new StripError("truncated PNG chunk");
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    if (PNG_KEEP.has(type)) parts.push(bytes.subarray(pos, end));
    else removed[type] = (removed[type] || 0) + 1;
    ended = type === "IEND";
    pos = end;
  }
  if (!ended) throw new StripError("PNG without an end chunk");
  if (pos < bytes.length) removed["data after the image"] = 1;
  return { bytes: concat(parts), removed };
}

// ---- JPEG ---------------------------------------------------------------------------------------
// Kept: APP0 (JFIF), APP2 (ICC colour profile) and APP14 (Adobe colour transform) change how the
// pixels decode; every other APPn (APP1 EXIF/XMP, APP13 IPTC/Photoshop...) and COM are removed.
const JPEG_KEEP_APP = new Set([0xe0, 0xe2, 0xee]);
const JPEG_NAMES = { 0xe1: "EXIF/XMP (APP1)", 0xed: "IPTC/Photoshop (APP13)", 0xfe: "comment (COM)" };

/** A JPEG without its metadata segments; entropy-coded data copied byte for byte. */
export function stripJpeg(bytes) {
  if (bytes[0] !== 0xff || bytes[1] !== 0xd8) throw new StripError("not a JPEG file");
  const parts = [bytes.subarray(0, 2)];
  const removed = {};
  let pos = 2;
  for (;;) {
    if (pos + 2 > bytes.length) throw new StripError("JPEG without an end marker");
    if (bytes[pos] !== 0xff) throw new StripError("damaged JPEG segment");
    const marker = bytes[pos + 1];
    if (marker === 0xff) { pos += 1; continue; } // fill byte
    if (marker === 0xd9) { // EOI: anything after it is not part of the image
      parts.push(bytes.subarray(pos, pos + 2));
      if (pos + 2 < bytes.length) removed["data after the image"] = 1;
      break;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) { // TEM, RSTn: no length
      parts.push(bytes.subarray(pos, pos + 2));
      pos += 2;
      continue;
    }
    if (pos + 4 > bytes.length) throw new StripError("truncated JPEG segment");
    const end = pos + 2 + ((bytes[pos + 2] << 8) | bytes[pos + 3]);
    if (end > bytes.length) throw new StripError("truncated JPEG segment");
    const metadata = marker === 0xfe || (marker >= 0xe0 && marker <= 0xef && !JPEG_KEEP_APP.has(marker));
    if (metadata) {
      const name = JPEG_NAMES[marker] || `APP${marker - 0xe0}`;
      removed[name] = (removed[name] || 0) + 1;
      pos = end;
      continue;
    }
    if (marker !== 0xda) { parts.push(bytes.subarray(pos, end)); pos = end; continue; }
    // SOS: the scan header, then entropy-coded data up to the next marker (not 0xFF00, not RSTn).
    let scan = end;
    for (;;) {
      if (scan + 1 >= bytes.length) throw new StripError("JPEG without an end marker");
      const next = bytes[scan + 1];
      if (bytes[scan] !== 0xff || next === 0x00 || (next >= 0xd0 && next <= 0xd7)) scan += bytes[scan] === 0xff ? 2 : 1;
      else if (next === 0xff) scan += 1; // fill bytes before a marker
      else break;
    }
    parts.push(bytes.subarray(pos, scan));
    pos = scan;
  }
  return { bytes: concat(parts), removed };
}

// ---- TIFF ---------------------------------------------------------------------------------------
// Fields that describe the image itself (baseline and extension tags): kept. Every other field's
// value (ImageDescription, Make, Model, Software, DateTime, Artist, HostComputer, Copyright, XMP,
// IPTC, Photoshop, private tags...) is overwritten with zeros where it lies, and the EXIF, GPS and
// interoperability directories are emptied, so no offset moves and the image data stays as it was.
const TIFF_KEEP = new Set([254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 274, 277, 278, 279, 280, 281,
  282, 283, 284, 290, 291, 296, 317, 318, 319, 320, 322, 323, 324, 325, 330, 332, 338, 339, 340, 341, 347,
  512, 513, 514, 515, 517, 518, 519, 520, 521, 529, 530, 531, 532]);
const TIFF_POINTERS = new Set([34665, 34853, 40965]); // EXIF, GPS, interoperability directories
const TIFF_NAMES = { 269: "DocumentName", 270: "ImageDescription", 271: "Make", 272: "Model", 285: "PageName",
  305: "Software", 306: "DateTime", 315: "Artist", 316: "HostComputer", 700: "XMP", 33432: "Copyright",
  33723: "IPTC", 34377: "Photoshop", 34665: "EXIF", 34853: "GPS", 40965: "Interoperability" };
const TIFF_TYPE_SIZE = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4 };

/** A copy of the TIFF with its metadata fields blanked in place (every page, EXIF/GPS emptied). */
export function stripTiff(bytes) {
  const out = bytes.slice();
  const order = String.fromCharCode(out[0], out[1]);
  if (order !== "II" && order !== "MM") throw new StripError("not a TIFF file");
  const little = order === "II";
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const version = view.getUint16(2, little);
  if (version === 43) throw new StripError("BigTIFF files are not supported");
  if (version !== 42) throw new StripError("not a TIFF file");
  const removed = {};
  const seen = new Set();
  const check = (offset, size) => { if (offset < 8 || offset + size > out.length) throw new StripError("damaged TIFF directory"); };
  const zero = (offset, size) => { check(offset, size); out.fill(0, offset, offset + size); };
  const valueAt = (entry) => {
    const type = view.getUint16(entry + 2, little);
    const size = (TIFF_TYPE_SIZE[type] || 1) * view.getUint32(entry + 4, little);
    return [size <= 4 ? entry + 8 : view.getUint32(entry + 8, little), size];
  };
  const note = (tag) => { const name = TIFF_NAMES[tag] || `tag ${tag}`; removed[name] = (removed[name] || 0) + 1; };

  /** Empty a directory of metadata (EXIF, GPS...): blank its values, then its entries and count. */
  const emptyDirectory = (ifd) => {
    if (seen.has(ifd)) return;
    seen.add(ifd);
    check(ifd, 2);
    const count = view.getUint16(ifd, little);
    check(ifd, 2 + 12 * count + 4);
    for (let i = 0; i < count; i += 1) {
      const entry = ifd + 2 + 12 * i;
      const tag = view.getUint16(entry, little);
      if (TIFF_POINTERS.has(tag)) emptyDirectory(view.getUint32(entry + 8, little));
      const [at, size] = valueAt(entry);
      if (size > 4) zero(at, size);
    }
    zero(ifd, 2 + 12 * count + 4); // no entries, no next directory
  };

  /** Blank the metadata fields of one image directory; returns the next one's offset. */
  const imageDirectory = (ifd) => {
    seen.add(ifd);
    check(ifd, 2);
    const count = view.getUint16(ifd, little);
    check(ifd, 2 + 12 * count + 4);
    for (let i = 0; i < count; i += 1) {
      const entry = ifd + 2 + 12 * i;
      const tag = view.getUint16(entry, little);
      if (TIFF_KEEP.has(tag)) continue;
      note(tag);
      if (TIFF_POINTERS.has(tag)) { emptyDirectory(view.getUint32(entry + 8, little)); continue; }
      const [at, size] = valueAt(entry);
      zero(at, size);
    }
    return view.getUint32(ifd + 2 + 12 * count, little);
  };

  let ifd = view.getUint32(4, little);
  while (ifd) {
    if (seen.has(ifd)) throw new StripError("damaged TIFF: directories loop");
    ifd = imageDirectory(ifd);
  }
  return { bytes: out, removed };
}

// ---- burned-in text -----------------------------------------------------------------------------
/**
 * A cheap look for text burned into the image: bright, thin strokes in a corner (where scanners
 * print names, dates and ids). ``grey`` holds one value per pixel, row by row. Returns the corners
 * that look like text ([] when none). It can miss text and flag other things: a hint, never a proof.
 */
export function textLikeCorners(grey, width, height) {
  if (width < 32 || height < 32) return [];
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < grey.length; i += 1) { const v = grey[i]; if (v < min) min = v; if (v > max) max = v; }
  if (!(max > min)) return [];
  const threshold = min + 0.8 * (max - min);
  const rw = Math.floor(width * 0.3);
  const rh = Math.floor(height * 0.15);
  const corners = { "top left": [0, 0], "top right": [width - rw, 0], "bottom left": [0, height - rh], "bottom right": [width - rw, height - rh] };
  const found = [];
  for (const [name, [x0, y0]] of Object.entries(corners)) {
    const bright = (x, y) => grey[y * width + x] >= threshold;
    let pixels = 0;
    let rowRuns = 0;
    let colRuns = 0;
    let rows = 0;
    const cols = new Uint8Array(rw);
    for (let y = y0; y < y0 + rh; y += 1) {
      let inRow = 0;
      for (let x = x0; x < x0 + rw; x += 1) {
        if (!bright(x, y)) continue;
        pixels += 1;
        inRow = 1;
        cols[x - x0] = 1;
        if (x === x0 || !bright(x - 1, y)) rowRuns += 1;
        if (y === y0 || !bright(x, y - 1)) colRuns += 1;
      }
      rows += inRow;
    }
    const columns = cols.reduce((a, b) => a + b, 0);
    // A line of characters: thin strokes, several of them across each row it covers and more than
    // one down a column. A skull, a table edge or a single letter (an orientation marker) is not.
    const text = pixels >= 20 && pixels <= 0.3 * rw * rh && pixels / rowRuns <= 4
      && rowRuns / rows >= 3 && colRuns / columns >= 1.3;
    if (text) found.push(name);
  }
  return found;
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) { out.set(part, at); at += part.length; }
  return out;
}
