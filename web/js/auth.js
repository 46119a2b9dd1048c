// Sign-in. Production: Cognito hosted UI, authorization code + PKCE, tokens in sessionStorage,
// refreshed before they expire. Local stack: one of the provisioned clinician identities.
"use strict";

const SESSION_KEY = "strokelens.session";
const PKCE_KEY = "strokelens.pkce";
const REFRESH_MARGIN_MS = 60_000;

function b64url(bytes) {
  let s = "";
  bytes.forEach((b) => { s += String.fromCharCode(b); });
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(nBytes = 32) {
  return b64url(crypto.getRandomValues(new Uint8Array(nBytes)));
}

export function jwtClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(Array.from(atob(part), (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""));
    return JSON.parse(json);
  } catch {
    return {};
  }
}

export class AuthError extends Error {}

export class Auth {
  constructor(config) {
    this.config = config.auth || { mode: "local" };
    this.mode = this.config.mode;
    this.listeners = new Set();
    this.refreshTimer = null;
    this.refreshing = null;
  }

  get session() {
    try { return JSON.parse(sessionStorage.getItem(SESSION_KEY)) || null; } catch { return null; }
  }

  get signedIn() {
    const s = this.session;
    return Boolean(s && s.idToken && (s.refreshToken || s.expiresAt > Date.now()));
  }

  get displayName() {
    const s = this.session;
    return s ? s.name : "";
  }

  onChange(fn) { this.listeners.add(fn); }

  _store(tokens, name) {
    const previous = this.session || {};
    const claims = jwtClaims(tokens.id_token);
    const session = {
      idToken: tokens.id_token,
      accessToken: tokens.access_token,
      refreshToken: tokens.refresh_token || previous.refreshToken || null,
      expiresAt: Date.now() + 1000 * Number(tokens.expires_in || 3600),
      name: name || claims.name || claims.email || claims["cognito:username"] || previous.name || "clinician",
      sub: claims.sub || null,
    };
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
    this._schedule();
    this.listeners.forEach((fn) => fn(true));
  }

  signOut(reason) {
    const session = this.session;
    const wasCognito = this.mode === "cognito" && session;
    sessionStorage.removeItem(SESSION_KEY);
    clearTimeout(this.refreshTimer);
    if (wasCognito && session.refreshToken) this._revoke(session.refreshToken);
    this.listeners.forEach((fn) => fn(false, reason));
    if (wasCognito && !reason) {
      const c = this.config;
      const url = new URL(this._domain() + "/logout");
      url.searchParams.set("client_id", c.clientId);
      url.searchParams.set("logout_uri", c.logoutUri || c.redirectUri);
      window.location.assign(url.toString());
    }
  }

  /** Best effort: revoke the refresh token (and the tokens it issued) at Cognito, so a copy of it
   * does not outlive the session. keepalive: the request survives the navigation to /logout. */
  _revoke(token) {
    fetch(this._domain() + "/oauth2/revoke", {
      method: "POST", keepalive: true, headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token, client_id: this.config.clientId }).toString(),
    }).catch(() => {});
  }

  // ---- local stack -------------------------------------------------------------------------
  async signInLocal(username) {
    let res;
    try {
      res = await fetch(this.config.loginUrl, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ username }),
      });
    } catch {
      throw new AuthError("Cannot reach the sign-in service. Check your connection and try again.");
    }
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new AuthError(body.error?.message || `Sign-in failed (HTTP ${res.status}).`);
    const user = (this.config.users || []).find((u) => u.username === username);
    this._store(body, user ? user.label : username);
  }

  // ---- Cognito hosted UI, authorization code + PKCE ----------------------------------------
  _domain() {
    const d = String(this.config.domain || "").replace(/\/+$/, "");
    return /^https?:\/\//.test(d) ? d : `https://${d}`;
  }

  async signInCognito() {
    const c = this.config;
    const verifier = randomString(48);
    const state = randomString(16);
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
    sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state, hash: window.location.hash }));
    const url = new URL(this._domain() + "/oauth2/authorize");
    url.searchParams.set("response_type", "code");
    url.searchParams.set("client_id", c.clientId);
    url.searchParams.set("redirect_uri", c.redirectUri);
    url.searchParams.set("scope", c.scopes || "openid email profile");
    url.searchParams.set("state", state);
    url.searchParams.set("code_challenge_method", "S256");
    url.searchParams.set("code_challenge", b64url(new Uint8Array(digest)));
    window.location.assign(url.toString());
  }

  /** Finish a hosted-UI redirect (?code=&state=) if this page load is one. Returns true if handled. */
  async completeRedirect() {
    if (this.mode !== "cognito") return false;
    const params = new URLSearchParams(window.location.search);
    if (!params.has("code") && !params.has("error")) return false;
    const pending = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null");
    sessionStorage.removeItem(PKCE_KEY);
    const clean = window.location.pathname + (pending?.hash || "");
    window.history.replaceState(null, "", clean);
    if (params.has("error")) throw new AuthError(`Sign-in was not completed (${params.get("error_description") || params.get("error")}).`);
    if (!pending || pending.state !== params.get("state")) throw new AuthError("Sign-in could not be verified (state mismatch). Please sign in again.");
    const tokens = await this._token({
      grant_type: "authorization_code", client_id: this.config.clientId, code: params.get("code"),
      redirect_uri: this.config.redirectUri, code_verifier: pending.verifier,
    });
    this._store(tokens);
    return true;
  }

  async _token(form) {
    let res;
    try {
      res = await fetch(this._domain() + "/oauth2/token", {
        method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(form),
      });
    } catch {
      throw new AuthError("Cannot reach the sign-in service. Check your connection and try again.");
    }
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new AuthError(`Sign-in failed: ${body.error || res.status}.`);
    return body;
  }

  async refresh() {
    const s = this.session;
    if (!s || !s.refreshToken || this.mode !== "cognito") throw new AuthError("Your session has expired. Please sign in again.");
    this.refreshing ||= this._token({ grant_type: "refresh_token", client_id: this.config.clientId, refresh_token: s.refreshToken })
      .then((tokens) => this._store(tokens, s.name))
      .finally(() => { this.refreshing = null; });
    return this.refreshing;
  }

  _schedule() {
    clearTimeout(this.refreshTimer);
    const s = this.session;
    if (!s || this.mode !== "cognito" || !s.refreshToken) return;
    const wait = Math.max(5_000, s.expiresAt - Date.now() - REFRESH_MARGIN_MS);
    this.refreshTimer = setTimeout(() => this.refresh().catch(() => this.signOut("expired")), wait);
  }

  /** A valid ID token for the API, refreshed first when it is about to expire. */
  async idToken() {
    let s = this.session;
    if (!s) throw new AuthError("Please sign in.");
    if (s.expiresAt - Date.now() < REFRESH_MARGIN_MS) {
      if (s.refreshToken && this.mode === "cognito") {
        await this.refresh();
        s = this.session;
      } else if (s.expiresAt <= Date.now()) {
        this.signOut("expired");
        throw new AuthError("Your session has expired. Please sign in again.");
      }
    }
    return s.idToken;
  }

  start() { this._schedule(); }
}
