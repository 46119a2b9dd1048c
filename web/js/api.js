// The StrokeLens HTTP API (JSON, bearer ID token).
"use strict";

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export function createApi(config, auth) {
  const base = String(config.apiUrl || "/api").replace(/\/+$/, "");

  async function request(method, path, body, { retryAuth = true } = {}) {
    const token = await auth.idToken();
    let res;
    try {
      res = await fetch(base + path, {
        method,
        headers: { Accept: "application/json", Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
    } catch {
      throw new ApiError(0, "NETWORK", "Cannot reach the StrokeLens service. Check your connection and try again.");
    }
    const data = await res.json().catch(() => null);
    if (res.status === 401) {
      if (retryAuth && auth.mode === "cognito" && auth.session?.refreshToken) {
        await auth.refresh();
        return request(method, path, body, { retryAuth: false });
      }
      auth.signOut("expired");
      throw new ApiError(401, "UNAUTHORIZED", "Your session has expired. Please sign in again.");
    }
    if (!res.ok) {
      const err = data?.error || {};
      const fallback = res.status === 404 ? "Not found." : `The service answered with an error (HTTP ${res.status}).`;
      throw new ApiError(res.status, err.code || `HTTP_${res.status}`, err.message || data?.message || fallback, err.field);
    }
    return data;
  }

  return {
    get: (path) => request("GET", path),
    post: (path, body) => request("POST", path, body),
  };
}
