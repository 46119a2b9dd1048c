// Formatters: numbers, sizes, durations, dates and identifiers as text for people. No DOM.
"use strict";

export function formatBytes(n) {
  if (!Number.isFinite(n)) return "?";
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${Math.round(n / 1024)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function formatPercent(p, digits = 1) {
  return `${(100 * Number(p)).toFixed(digits)} %`;
}

export function formatMs(ms) {
  if (!Number.isFinite(ms)) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function formatDate(iso, short = false) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso || "");
  if (short) {
    const sameYear = d.getFullYear() === new Date().getFullYear();
    return d.toLocaleString(undefined, { month: "short", day: "numeric", year: sameYear ? undefined : "numeric", hour: "2-digit", minute: "2-digit" });
  }
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

const ACRONYMS = { roc: "ROC", auc: "AUC", f1: "F1", ct: "CT", mr: "MR", mri: "MRI", id: "ID", ids: "IDs", bmi: "BMI",
  hu: "HU", cnn: "CNN", ci: "CI", url: "URL", dicom: "DICOM", png: "PNG", tflite: "TFLite", ms: "ms" };

/** "sensitivity_hemorrhage" -> "Sensitivity hemorrhage", with common acronyms kept upper-case. */
export function humanize(key) {
  const words = String(key).replace(/([a-z])([A-Z])/g, "$1 $2").split(/[_\s]+/).filter(Boolean)
    .map((w) => ACRONYMS[w.toLowerCase()] || w.toLowerCase());
  if (!words.length) return "";
  words[0] = ACRONYMS[words[0].toLowerCase()] || words[0].charAt(0).toUpperCase() + words[0].slice(1);
  return words.join(" ");
}

/** ["a", "b", "c"] -> "a, b or c". */
export function orList(items) {
  const list = [...items];
  return list.length < 2 ? list.join("") : `${list.slice(0, -1).join(", ")} or ${list[list.length - 1]}`;
}
