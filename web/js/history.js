// "My recent scans": the clinician's own scans, newest first, 20 a page ("Load older scans").
"use strict";

import { $, h } from "./dom.js";
import { formatDate } from "./format.js";
import { resultSummary } from "./result.js";

const PAGE_SIZE = 20;

function historyItem(scan) {
  const summary = resultSummary(scan);
  const link = h("a", { href: `#/scan/${scan.scan_id}`, class: "history-link", dataset: { scanId: scan.scan_id } },
    h("span", { class: "history-top" },
      h("span", { class: "history-date", text: formatDate(scan.created_at, true) }),
      h("span", { class: `badge badge-${summary.tone}`, text: summary.badge })),
    h("span", { class: "history-sub", text: summary.line }));
  return h("li", { dataset: { scanId: scan.scan_id } }, link);
}

export class History {
  constructor(api) {
    this.api = api;
    this.next = null; // the API's cursor for the next (older) page
    this.current = null; // the scan open in the panel, marked in the list
    $("history-refresh").addEventListener("click", () => this.load());
    $("history-more").addEventListener("click", () => this.load(true));
  }

  async load(more = false) {
    const list = $("history");
    const msg = $("history-msg");
    if (!more) this.next = null;
    msg.textContent = more ? "Loading older scans…" : (list.children.length ? "" : "Loading…");
    try {
      const cursor = more && this.next ? `&next=${encodeURIComponent(this.next)}` : "";
      const page = await this.api.get(`/scans?limit=${PAGE_SIZE}${cursor}`);
      const items = (page.scans || []).map(historyItem);
      if (more) list.append(...items); else list.replaceChildren(...items);
      this.next = page.next || null;
      $("history-more").hidden = !this.next;
      msg.textContent = list.children.length ? "" : "No scans yet. Upload a slice to start.";
      this.mark(this.current);
    } catch (err) {
      msg.textContent = `Could not load your scans: ${err.message}`;
    }
  }

  /** Mark the open scan (or none) in the list. */
  mark(scanId) {
    this.current = scanId;
    for (const li of $("history").children) {
      const current = li.dataset.scanId === scanId;
      li.classList.toggle("current", current);
      const a = li.querySelector("a");
      if (current) a.setAttribute("aria-current", "true"); else a.removeAttribute("aria-current");
    }
  }

  reset() {
    this.next = null;
    this.current = null;
    $("history").replaceChildren();
  }
}
