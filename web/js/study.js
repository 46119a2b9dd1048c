// The open study (#/study/<id>): polled with back-off while its files arrive and the model reads
// the stack, then the study result card and the stack viewer.
"use strict";

import { $, h, clear } from "./dom.js";
import { FINAL, pollPath } from "./poll.js";
import { renderStudyResult } from "./studyresult.js";
import { StackViewer } from "./stack.js";

const GIVE_UP_MS = 15 * 60_000; // a study waits for its upload window (minutes) before a partial read

function bar(id, label, value, max) {
  return h("div", { class: "study-bar" },
    h("label", { for: id, text: label }),
    h("progress", { id, max: String(Math.max(1, max)), value: String(Math.min(value, max)) }),
    h("span", { class: "progress-pct", text: `${value} of ${max}` }));
}

export class StudyView {
  /** hooks: history() reloads and marks the lists; marked(id) marks the open study. */
  constructor(api, contract, hooks) {
    this.api = api;
    this.contract = contract;
    this.hooks = hooks;
    this.current = null;
    this.pollAbort = null;
    this.viewer = new StackViewer($("study-viewer"), api, contract);
  }

  _progress(study) {
    const p = study.progress || {};
    const expected = Number(p.files_expected) || 0;
    const panel = $("study-panel");
    Object.assign(panel.dataset, { status: study.status, received: String(p.files_received ?? 0), read: String(p.files_read ?? 0) });
    clear($("study-progress")).append(
      bar("study-received", "Files received", Number(p.files_received) || 0, expected),
      bar("study-read", "Files read", Number(p.files_read) || 0, expected));
  }

  async open(studyId) {
    if (studyId === this.current) return;
    this.pollAbort?.abort();
    const controller = new AbortController();
    this.pollAbort = controller;
    this.current = studyId;
    this.hooks.marked(studyId);
    const panel = $("study-panel");
    panel.hidden = false;
    panel.dataset.studyId = studyId;
    panel.dataset.status = "";
    $("study-h").textContent = "Study";
    $("study-id").textContent = `#${studyId.slice(-8)}`;
    $("study-id").title = studyId;
    clear($("study-progress"));
    clear($("study-result"));
    this.viewer.close();
    const status = $("study-status");
    status.className = "scan-status working";
    status.textContent = "Loading…";
    try {
      await this.contract.loaded();
      const study = await pollPath(this.api, `/studies/${encodeURIComponent(studyId)}`, controller.signal, (s, elapsed) => {
        this._progress(s);
        const p = s.progress || {};
        const secs = `(${Math.round(elapsed / 1000)} s)`;
        status.textContent = s.status === "PENDING"
          ? `Waiting for the files: ${p.files_received ?? 0} of ${p.files_expected ?? "?"} received ${secs}`
          : `The model is reading the stack… ${secs}`;
        return true;
      }, GIVE_UP_MS);
      if (FINAL.has(study.status)) this._final(study);
      else status.textContent = "Still processing. It will appear in “My recent studies” when it is ready.";
    } catch (err) {
      if (err.name === "AbortError" || controller.signal.aborted) return;
      status.className = "scan-status";
      status.textContent = "";
      clear($("study-result")).append(h("div", { class: "alert alert-error", role: "alert" },
        h("strong", { text: err.status === 404 ? "Study not found." : "Could not load this study." }),
        h("span", { class: "alert-detail", text: err.status === 404 ? "There is no study with this id for your account." : err.message })));
    }
  }

  _final(study) {
    this._progress(study);
    const status = $("study-status");
    status.className = "scan-status";
    status.textContent = study.status === "DONE" ? "Reading complete." : "The study could not be read.";
    $("study-h").textContent = study.status === "DONE" ? "Study model output" : "Study not read";
    renderStudyResult($("study-result"), study, this.contract, { onSlice: (pos) => this.showSlice(pos) });
    const c = study.result?.counts || {};
    const viewable = (c.assessed || 0) + (c.not_assessable || 0) > 0; // unreadable slices have no previews
    if (study.status === "DONE" && viewable) this.viewer.open(study); else this.viewer.close();
    this.hooks.history();
  }

  /** A key slice chosen on the card: show it in the viewer and move there. */
  showSlice(pos) {
    this.viewer.go(pos);
    const stage = $("stack-stage");
    stage?.scrollIntoView({ block: "nearest" });
    stage?.focus({ preventScroll: true });
  }

  hide() {
    this.pollAbort?.abort();
    this.current = null;
    $("study-panel").hidden = true;
    this.viewer.close();
  }

  reset() {
    this.hide();
    clear($("study-result"));
  }
}
