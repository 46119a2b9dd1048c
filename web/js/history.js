// "My recent scans" and "My recent studies": the clinician's own, newest first, 20 a page
// ("Load older …"). Both lists share one shape; only the API path and the summary differ.
"use strict";

import { $, h } from "./dom.js";
import { formatDate } from "./format.js";
import { resultSummary } from "./result.js";
import { studySummary } from "./studyresult.js";

const PAGE_SIZE = 20;

const KINDS = {
  scans: { path: "/scans", id: "scan_id", href: "#/scan/", summary: resultSummary, list: "history", msg: "history-msg", more: "history-more",
    empty: "No scans yet. Upload a slice to start.", noun: "scans" },
  studies: { path: "/studies", id: "study_id", href: "#/study/", summary: studySummary, list: "studies", msg: "studies-msg", more: "studies-more",
    empty: "No studies yet. Choose several slices or a folder to read a study.", noun: "studies" },
};

function historyItem(kind, item) {
  const id = item[kind.id];
  const summary = kind.summary(item);
  const files = item.progress?.files_expected;
  const link = h("a", { href: `${kind.href}${id}`, class: "history-link", dataset: { scanId: id } },
    h("span", { class: "history-top" },
      h("span", { class: "history-date", text: formatDate(item.created_at, true) }),
      h("span", { class: `badge badge-${summary.tone}`, text: summary.badge })),
    h("span", { class: "history-sub", text: files ? `${files} slices · ${summary.line}` : summary.line }));
  return h("li", { dataset: { scanId: id } }, link);
}

class Listing {
  constructor(api, kind) {
    this.api = api;
    this.kind = kind;
    this.next = null; // the API's cursor for the next (older) page
    $(kind.more).addEventListener("click", () => this.load(true));
  }

  async load(more = false) {
    const { list: listId, msg: msgId, noun } = this.kind;
    const list = $(listId);
    const msg = $(msgId);
    if (!more) this.next = null;
    msg.textContent = more ? `Loading older ${noun}…` : (list.children.length ? "" : "Loading…");
    try {
      const cursor = more && this.next ? `&next=${encodeURIComponent(this.next)}` : "";
      const page = await this.api.get(`${this.kind.path}?limit=${PAGE_SIZE}${cursor}`);
      const items = (page[noun] || []).map((item) => historyItem(this.kind, item));
      if (more) list.append(...items); else list.replaceChildren(...items);
      this.next = page.next || null;
      $(this.kind.more).hidden = !this.next;
      msg.textContent = list.children.length ? "" : this.kind.empty;
    } catch (err) {
      msg.textContent = `Could not load your ${noun}: ${err.message}`;
    }
  }

  reset() {
    this.next = null;
    $(this.kind.list).replaceChildren();
  }
}

export class History {
  constructor(api) {
    this.listings = [new Listing(api, KINDS.scans), new Listing(api, KINDS.studies)];
    this.current = null; // the scan or study open in the panel, marked in its list
    $("history-refresh").addEventListener("click", () => this.load());
  }

  async load(more = false) {
    await Promise.all(this.listings.map((l) => l.load(more)));
    this.mark(this.current);
  }

  /** Mark the open scan or study (or none) in the lists. */
  mark(id) {
    this.current = id;
    for (const li of [...$("history").children, ...$("studies").children]) {
      const current = li.dataset.scanId === id;
      li.classList.toggle("current", current);
      const a = li.querySelector("a");
      if (current) a.setAttribute("aria-current", "true"); else a.removeAttribute("aria-current");
    }
  }

  reset() {
    this.current = null;
    for (const l of this.listings) l.reset();
  }
}
