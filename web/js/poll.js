// Polling a scan until it is final, with back-off: quick at first (most readings take seconds),
// then slower so a long queue does not hammer the API, and a give-up after a few minutes.
"use strict";

export const FINAL = new Set(["DONE", "FAILED"]);
const FIRST_MS = 400;
const MAX_MS = 4000;
const BACKOFF = 1.5;
const GIVE_UP_MS = 180_000;

export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); reject(new DOMException("Aborted", "AbortError")); }, { once: true });
  });
}

/** GET the scan until it is final, ``keepWaiting(scan, elapsedMs)`` returns false, or time runs out.
 * Resolves with the last scan seen (final or not); rejects with an AbortError once ``signal`` aborts. */
export function pollScan(api, scanId, signal, keepWaiting) {
  return pollPath(api, `/scans/${encodeURIComponent(scanId)}`, signal, keepWaiting);
}

/** The same for any record at ``path`` (studies take longer: ``giveUpMs``). */
export async function pollPath(api, path, signal, keepWaiting, giveUpMs = GIVE_UP_MS) {
  const started = Date.now();
  let delay = FIRST_MS;
  for (;;) {
    const scan = await api.get(path);
    if (signal.aborted) throw new DOMException("Aborted", "AbortError");
    const elapsed = Date.now() - started;
    if (FINAL.has(scan.status) || !keepWaiting(scan, elapsed) || elapsed > giveUpMs) return scan;
    await sleep(delay, signal);
    delay = Math.min(MAX_MS, Math.round(delay * BACKOFF));
  }
}
