// StrokeLens minimal client: sign in, upload via presigned POST, poll, show the reading.
"use strict";
const $ = (id) => document.getElementById(id);
let config = null;
let token = sessionStorage.getItem("strokelens.token");
let who = sessionStorage.getItem("strokelens.user");

async function api(path, options = {}) {
  const res = await fetch(config.apiUrl + path, {
    ...options,
    headers: { "Content-Type": "application/json", Authorization: "Bearer " + token, ...(options.headers || {}) },
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error((body.error && body.error.message) || body.message || ("HTTP " + res.status));
  return body;
}

function show(signedIn) {
  $("signin").hidden = signedIn;
  $("app").hidden = !signedIn;
  if (signedIn) { $("who").textContent = who; loadHistory(); }
}

async function login() {
  const username = $("user").value;
  const res = await fetch(config.auth.loginUrl, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username }) });
  const body = await res.json();
  if (!res.ok) { $("signin-msg").textContent = body.error.message; return; }
  token = body.id_token; who = username;
  sessionStorage.setItem("strokelens.token", token); sessionStorage.setItem("strokelens.user", who);
  show(true);
}

function uploadToS3(upload, file) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    Object.entries(upload.fields).forEach(([k, v]) => form.append(k, v));
    form.append("file", file);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", upload.url);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) $("progress").value = (100 * e.loaded) / e.total; };
    xhr.onload = () => {
      if (xhr.status < 300) return resolve();
      const code = (xhr.responseText.match(/<Code>(.*?)<\/Code>/) || [])[1];
      reject(new Error(code === "EntityTooLarge" ? "The file is larger than the upload limit." :
        "The upload was refused (" + (code || xhr.status) + ")."));
    };
    xhr.onerror = () => reject(new Error("The upload failed: network error."));
    xhr.send(form);
  });
}

function renderResult(scan) {
  const box = $("result");
  box.hidden = false;
  box.replaceChildren();
  const h = document.createElement("h3");
  if (scan.status === "FAILED") {
    h.textContent = "Could not read this scan";
    const p = document.createElement("p"); p.className = "error"; p.textContent = scan.error.message;
    box.append(h, p);
    return;
  }
  const r = scan.result;
  h.textContent = "Model output: highest probability for \u201c" + r.label + "\u201d";
  box.append(h);
  Object.entries(r.probabilities).forEach(([label, p]) => {
    const row = document.createElement("div"); row.className = "prob";
    const name = document.createElement("span"); name.textContent = label;
    const bar = document.createElement("div"); bar.className = "bar"; bar.style.width = (100 * p).toFixed(1) + "%";
    bar.setAttribute("role", "img"); bar.setAttribute("aria-label", label + " " + (100 * p).toFixed(1) + "%");
    const val = document.createElement("span"); val.textContent = (100 * p).toFixed(1) + "%";
    row.append(name, bar, val); box.append(row);
  });
  (scan.warnings || []).forEach((w) => { const p = document.createElement("p"); p.className = "warning"; p.textContent = w; box.append(p); });
  const meta = document.createElement("p");
  meta.textContent = "Model " + r.model_version + (r.synthetic_model ? " (synthetic training data)" : "") +
    " \u00b7 " + Math.round(Object.values(scan.timings_ms || {}).reduce((a, b) => a + b, 0)) + " ms";
  box.append(meta);
}

async function poll(scanId) {
  let delay = 500;
  for (let i = 0; i < 40; i++) {
    const scan = await api("/scans/" + scanId);
    $("status").textContent = "Status: " + scan.status;
    if (scan.status === "DONE" || scan.status === "FAILED") { renderResult(scan); loadHistory(); return; }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 1.5, 4000);
  }
  $("status").textContent = "Still processing; check My recent scans later.";
}

async function submit(event) {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) return;
  $("result").hidden = true; $("status").className = "";
  $("progress").hidden = false; $("progress").value = 0;
  try {
    $("status").textContent = "Uploading\u2026";
    const scan = await api("/scans", { method: "POST",
      body: JSON.stringify({ filename: file.name, content_type: file.type, modality: $("modality").value || undefined }) });
    await uploadToS3(scan.upload, file);
    $("status").textContent = "Uploaded; reading\u2026";
    await poll(scan.scan_id);
  } catch (err) {
    $("status").className = "error"; $("status").textContent = err.message;
  }
}

async function loadHistory() {
  const list = $("history");
  try {
    const page = await api("/scans?limit=20");
    list.replaceChildren(...page.scans.map((s) => {
      const li = document.createElement("li");
      const a = document.createElement("a"); a.href = "#" + s.scan_id;
      a.textContent = s.created_at + " \u2014 " + s.status + (s.result ? " (" + s.result.label + ")" : "");
      a.onclick = (e) => { e.preventDefault(); poll(s.scan_id); };
      li.append(a); return li;
    }));
  } catch (err) { list.textContent = err.message; }
}

async function start() {
  config = await (await fetch("config.json")).json();
  (config.auth.users || []).forEach((u) => { const o = document.createElement("option"); o.value = u.username; o.textContent = u.label; $("user").append(o); });
  $("login").onclick = login;
  $("logout").onclick = () => { sessionStorage.clear(); token = null; show(false); };
  $("upload-form").onsubmit = submit;
  show(Boolean(token));
}
start();
