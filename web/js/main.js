// StrokeLens web app: configuration, sign-in, hash routes (#/, #/scan/<id>, #/study/<id>, #/model, #/risk).
"use strict";

import { $, h, clear, showMessage, hideMessage } from "./dom.js";
import { Auth } from "./auth.js";
import { createApi } from "./api.js";
import { Contract } from "./contract.js";
import { ScansView } from "./scans.js";
import { ModelView } from "./model.js";
import { RiskView } from "./risk.js";

const VIEWS = ["signin", "scans", "model", "risk"];
const TITLES = { signin: "Sign in", scans: "Scans", model: "Model & metrics", risk: "Clinical risk form" };

function parseRoute() {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  const parts = path.split("/").filter(Boolean);
  const params = new URLSearchParams(query || "");
  if (parts[0] === "model") return { view: "model", params };
  if (parts[0] === "risk") return { view: "risk", params };
  if (parts[0] === "scan" && /^[A-Za-z0-9_-]{1,64}$/.test(parts[1] || "")) return { view: "scans", scanId: parts[1], params };
  if (parts[0] === "study" && /^[A-Za-z0-9_-]{1,64}$/.test(parts[1] || "")) return { view: "scans", studyId: parts[1], params };
  return { view: "scans", params };
}

class App {
  constructor(config) {
    this.config = config;
    this.auth = new Auth(config);
    this.api = createApi(config, this.auth);
    this.router = { go: (hash) => { if (window.location.hash === hash) this.route(); else window.location.hash = hash; } };
    this.contract = new Contract(this.api);
    this.scans = new ScansView(this.api, this.contract, this.router);
    this.model = new ModelView(this.api);
    this.risk = new RiskView(this.api, this.contract);
    this.lastView = null;
    this.auth.onChange((signedIn, reason) => {
      if (!signedIn) {
        this.scans.reset();
        this.model.reset();
        this.risk.reset();
        this.contract.reset();
        hideMessage($("global-error"));
        if (reason === "expired") $("signin-msg").textContent = "Your session has expired. Please sign in again.";
      }
      this.route();
    });
  }

  async start() {
    this._buildSignIn();
    $("signout").addEventListener("click", () => this.auth.signOut());
    window.addEventListener("hashchange", () => this.route());
    try {
      await this.auth.completeRedirect();
    } catch (err) {
      $("signin-msg").textContent = err.message;
    }
    this.auth.start();
    $("boot").remove();
    this.route();
  }

  _buildSignIn() {
    const auth = this.config.auth || {};
    if (auth.mode === "cognito") {
      $("signin-cognito").hidden = false;
      $("signin-cognito-btn").addEventListener("click", () => this.auth.signInCognito().catch((err) => { $("signin-msg").textContent = err.message; }));
      return;
    }
    const host = $("signin-users");
    (auth.users || []).forEach((user, i) => {
      const id = `user-${i}`;
      host.append(h("label", { class: "choice", for: id },
        h("input", { type: "radio", name: "user", id, value: user.username, checked: i === 0 }),
        h("span", { class: "choice-text" }, h("span", { class: "choice-title", text: user.label || user.username }),
          h("span", { class: "choice-sub mono", text: user.username }))));
    });
    if (!(auth.users || []).length) host.append(h("p", { class: "muted", text: "No local clinicians are configured." }));
    const form = $("signin-local");
    form.hidden = false;
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const choice = form.querySelector("input[name=user]:checked");
      if (!choice) { $("signin-msg").textContent = "Choose a clinician identity."; return; }
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      $("signin-msg").textContent = "";
      try {
        await this.auth.signInLocal(choice.value);
      } catch (err) {
        $("signin-msg").textContent = err.message;
      } finally {
        button.disabled = false;
      }
    });
  }

  /** Fetch the contract once signed in. On failure the views fall back (the server still checks
   * everything) and the page says what is missing; the next route change tries again. */
  _fetchContract() {
    if (this.contract.known) { hideMessage($("global-error")); return; } // perhaps loaded by a view's retry
    if (this.contract.pending) return;
    this.contract.load()
      .then(() => hideMessage($("global-error")))
      .catch((err) => {
        if (!this.auth.signedIn) return;
        showMessage($("global-error"), "error", "Some settings could not be loaded from the StrokeLens service.",
          `${err.message} Accepted file types, the risk form and result texts need them; open another page or reload to try again.`);
      });
  }

  route() {
    const signedIn = this.auth.signedIn;
    if (signedIn) this._fetchContract();
    const route = signedIn ? parseRoute() : { view: "signin", params: new URLSearchParams() };
    for (const name of VIEWS) $(`view-${name}`).hidden = name !== route.view;
    $("nav").hidden = !signedIn;
    $("account").hidden = !signedIn;
    $("who").textContent = signedIn ? this.auth.displayName : "";
    for (const a of $("nav").querySelectorAll("a")) {
      if (a.dataset.route === route.view) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    }
    document.title = `${TITLES[route.view]} · StrokeLens`;
    if (route.view === "scans") this.scans.show(route.scanId, route.studyId);
    if (route.view === "model") this.model.show();
    if (route.view === "risk") this.risk.show(route.params);
    // Move focus to the new view's heading so keyboard and screen-reader users land in the right place.
    const changed = this.lastView !== route.view;
    this.lastView = route.view;
    const opened = route.scanId || route.studyId;
    if (changed || opened) {
      const heading = route.scanId ? $("scan-h") : route.studyId ? $("study-h") : document.querySelector(`#view-${route.view} h1`);
      if (heading && document.activeElement !== heading && this._started) heading.focus({ preventScroll: !opened });
    }
    this._started = true;
  }
}

async function boot() {
  let config;
  try {
    const res = await fetch("config.json", { cache: "no-store" });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    config = await res.json();
  } catch (err) {
    $("boot").remove();
    const box = $("global-error");
    clear(box).append(h("strong", { text: "StrokeLens is not configured. " }), `config.json could not be loaded (${err.message}).`);
    box.hidden = false;
    return;
  }
  const app = new App(config);
  window.strokelens = { version: 1 }; // marker for tests and support; holds no tokens
  await app.start();
  document.documentElement.dataset.ready = "true";
}

boot();
