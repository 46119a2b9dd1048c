// Gathering what the clinician chose or dropped: files, a folder (webkitdirectory) or dropped
// folders (DataTransferItem.webkitGetAsEntry), in natural filename order so a stack uploads as
// slice1, slice2 … slice10 (not slice1, slice10, slice2) and upload index = position in the folder.
"use strict";

const COLLATOR = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

/** The path a file was found under (folder picker or drop), else its name. */
export function pathOf(file) {
  return file.relativePath || file.webkitRelativePath || file.name;
}

/** Natural order on the full path: folders first by name, then "2" before "10" inside each. */
export function naturalSort(files) {
  return [...files].sort((a, b) => COLLATOR.compare(pathOf(a), pathOf(b)));
}

/** Hidden and system files a folder carries (".DS_Store", "Thumbs.db", DICOMDIR indexes) are never slices. */
export function isSystemFile(file) {
  const name = String(file.name);
  return name.startsWith(".") || /^(thumbs\.db|desktop\.ini|dicomdir)$/i.test(name);
}

function readEntries(reader) {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

function entryFile(entry) {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

/** Every file under a dropped entry; readEntries answers in batches (100 in Chromium), so read until empty. */
async function walk(entry, prefix, out) {
  if (entry.isFile) {
    const file = await entryFile(entry);
    file.relativePath = prefix + file.name; // an expando: File's own webkitRelativePath is read-only
    out.push(file);
    return;
  }
  if (!entry.isDirectory) return;
  const reader = entry.createReader();
  for (let batch = await readEntries(reader); batch.length; batch = await readEntries(reader)) {
    for (const child of batch) await walk(child, `${prefix}${entry.name}/`, out);
  }
}

/** The files of a drop: folders are walked; plain files are taken as they are. */
export async function droppedFiles(dataTransfer) {
  const entries = [...(dataTransfer?.items || [])].filter((item) => item.kind === "file")
    .map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.length) return [...(dataTransfer?.files || [])];
  const out = [];
  for (const entry of entries) await walk(entry, "", out);
  return out;
}

/** The chosen set, ready to send: system files dropped, natural order. */
export function collect(files) {
  return naturalSort([...files].filter((f) => !isSystemFile(f)));
}
