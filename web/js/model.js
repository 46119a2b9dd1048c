// Model & metrics: the model card rendered generically, and the precomputed plotly charts.
"use strict";

import { $, h, clear } from "./dom.js";
import { humanize } from "./format.js";

const FIRST = ["intended_use", "users", "findings", "limitations", "data", "metrics", "split", "preprocessing", "model", "labels", "training"];
// Sections read last: the previous model's figures, then the clinical model's own card.
const LAST = ["history", "clinical"];
const SECTION_TITLES = { history: "History: the previous model" };
const rank = (k) => (FIRST.includes(k) ? FIRST.indexOf(k) : LAST.includes(k) ? 100 + LAST.indexOf(k) : 99);
const sectionTitle = (k) => SECTION_TITLES[k] || humanize(k);
let plotlyPromise = null;

function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  plotlyPromise ||= new Promise((resolve, reject) => {
    const script = h("script", { src: "vendor/plotly.min.js", async: true });
    script.addEventListener("load", () => (window.Plotly ? resolve(window.Plotly) : reject(new Error("plotly.js did not load"))));
    script.addEventListener("error", () => { plotlyPromise = null; reject(new Error("plotly.js is not installed (run infra/build_web.py)")); });
    document.head.append(script);
  });
  return plotlyPromise;
}

function formatNumber(v, key = "") {
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return v.toLocaleString();
  if (Math.abs(v) <= 1 && /accuracy|f1|auc|sensitivity|specificity|precision|recall|brier|ece|rate|value|ci/i.test(key)) return v.toFixed(3);
  return Number(v.toPrecision(4)).toString();
}

const isPlainObject = (v) => v && typeof v === "object" && !Array.isArray(v);
const isMetric = (v) => isPlainObject(v) && typeof v.value === "number";

function metricsTable(values) {
  return h("table", { class: "data-table metrics-table" },
    h("caption", { class: "visually-hidden", text: "Test-split metrics with 95 % confidence intervals" }),
    h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Metric" }), h("th", { scope: "col", class: "num", text: "Value" }),
      h("th", { scope: "col", class: "num", text: "95 % CI" }))),
    h("tbody", {}, Object.entries(values).map(([name, m]) => h("tr", {},
      h("th", { scope: "row", text: humanize(name) }),
      h("td", { class: "num", text: formatNumber(m.value, name) }),
      h("td", { class: "num muted", text: typeof m.ci_low === "number" ? `${formatNumber(m.ci_low, name)} – ${formatNumber(m.ci_high, name)}` : "–" })))));
}

function matrixTable(cm, labels) {
  const rows = cm.values || [];
  const names = labels && labels.length === rows.length ? labels : rows.map((_, i) => `class ${i + 1}`);
  return h("table", { class: "data-table matrix-table" },
    h("caption", { text: `Rows: ${cm.rows || "true"} class · columns: ${cm.columns || "predicted"} class` }),
    h("thead", {}, h("tr", {}, h("td", {}), names.map((n) => h("th", { scope: "col", text: n })))),
    h("tbody", {}, rows.map((row, i) => h("tr", {}, h("th", { scope: "row", text: names[i] }),
      row.map((v, j) => h("td", { class: `num${i === j ? " diag" : ""}`, text: formatNumber(v) }))))));
}

const isScalar = (v) => v === null || typeof v !== "object";
const isFlat = (v) => isScalar(v) || (isPlainObject(v) && Object.values(v).every(isScalar)) || (Array.isArray(v) && v.every(isScalar));

function cellText(v, key) {
  if (isScalar(v)) return v === null ? "–" : typeof v === "boolean" ? (v ? "yes" : "no") : formatNumber(v, key);
  if (Array.isArray(v)) return v.map((x) => formatNumber(x, key)).join(", ");
  return Object.entries(v).map(([k, x]) => `${humanize(k)} ${cellText(x, k)}`).join(" · ");
}

/** A list of similar records (e.g. cross-validation runs) as one table. */
function recordsTable(items) {
  const columns = [...new Set(items.flatMap((o) => Object.keys(o)))];
  return h("div", { class: "table-scroll" }, h("table", { class: "data-table records-table" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", text: humanize(c) })))),
    h("tbody", {}, items.map((o) => h("tr", {}, columns.map((c) => h("td", { class: typeof o[c] === "number" ? "num" : "", text: c in o ? cellText(o[c], c) : "" })))))));
}

/** Any JSON value as readable DOM: strings as text, lists as lists, objects as definition lists. */
function renderValue(value, key, card, depth) {
  const rendered = renderInner(value, key, card, depth);
  // Deep, bulky detail (training internals) stays one click away so the card reads top-down.
  if (depth >= 1 && value && typeof value === "object" && JSON.stringify(value).length > 900) {
    return h("details", { class: "card-more" }, h("summary", { text: `Show ${humanize(key).toLowerCase()} details` }), rendered);
  }
  return rendered;
}

function renderInner(value, key, card, depth) {
  if (value === null || value === undefined) return h("span", { class: "muted", text: "–" });
  if (typeof value === "boolean") return h("span", { text: value ? "yes" : "no" });
  if (typeof value !== "object") return h("span", { text: formatNumber(value, key) });
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v !== "object" || v === null)) {
      if (value.length <= 6 && value.every((v) => typeof v !== "string" || v.length < 24)) return h("span", { text: value.map((v) => formatNumber(v, key)).join(", ") });
      return h("ul", { class: "card-list" }, value.map((v) => h("li", { text: formatNumber(v, key) })));
    }
    if (value.length > 1 && value.every((v) => isPlainObject(v) && Object.values(v).every(isFlat))) return recordsTable(value);
    return h("ol", { class: "card-list" }, value.map((v) => h("li", {}, renderValue(v, key, card, depth + 1))));
  }
  if (Array.isArray(value.values) && value.values.every(Array.isArray)) return matrixTable(value, card.labels);
  const entries = Object.entries(value);
  const metricEntries = entries.filter(([, v]) => isMetric(v));
  const parts = [];
  if (metricEntries.length) parts.push(metricsTable(Object.fromEntries(metricEntries)));
  const rest = entries.filter(([, v]) => !isMetric(v));
  if (rest.length) {
    parts.push(h("dl", { class: `card-dl depth-${Math.min(depth, 3)}` }, rest.map(([k, v]) => h("div", { class: "card-dl-item" },
      h("dt", { text: humanize(k) }), h("dd", {}, renderValue(v, k, card, depth + 1))))));
  }
  return parts.length === 1 ? parts[0] : h("div", {}, parts);
}

export function renderModelCard(host, card) {
  clear(host);
  const keys = Object.keys(card).filter((k) => !["name", "version", "synthetic"].includes(k));
  keys.sort((a, b) => rank(a) - rank(b));
  host.append(h("div", { class: "model-title" },
    h("h2", { text: card.name || "Model card" }),
    card.version ? h("span", { class: "badge badge-neutral mono", text: `version ${card.version}` }) : null,
    card.synthetic ? h("span", { class: "badge badge-warning", text: "trained on synthetic data" }) : null));
  const toc = h("nav", { class: "toc", "aria-label": "Model card sections" }, h("ul", {}, keys.map((k) => h("li", {}, h("a", { href: `#/model`, dataset: { target: `mc-${k}` }, text: sectionTitle(k) })))));
  toc.addEventListener("click", (e) => {
    const target = e.target.closest("a")?.dataset.target;
    if (!target) return;
    e.preventDefault();
    const el = document.getElementById(target);
    el?.scrollIntoView({ behavior: "smooth", block: "start" });
    el?.focus({ preventScroll: true });
  });
  host.append(toc);
  for (const key of keys) host.append(cardSection(card, key, card[key], 3, `mc-${key}`));
}

// A nested card: the clinical model's, or the previous model's kept as history (name, version, metrics).
const looksLikeCard = (v) => isPlainObject(v) && ("intended_use" in v || "limitations" in v || ("version" in v && "metrics" in v));

/** One model-card section; a nested card (e.g. the clinical model's) gets its own sub-headings. */
function cardSection(card, key, value, level, id) {
  const section = h("section", { class: `mc-section mc-${key}`, "aria-labelledby": id },
    h(`h${level}`, { id, tabindex: "-1", text: level === 3 ? sectionTitle(key) : humanize(key) }));
  if (typeof value === "string") section.append(h("p", { text: value }));
  else if (looksLikeCard(value) && level < 5) {
    const sub = Object.keys(value).filter((k) => !["name", "version"].includes(k))
      .sort((a, b) => rank(a) - rank(b));
    section.classList.add("mc-subcard");
    if (value.name || value.version) {
      section.append(h("p", { class: "model-title sub" }, value.name ? h("strong", { text: value.name }) : null,
        value.version ? h("span", { class: "badge badge-neutral mono", text: `version ${value.version}` }) : null));
    }
    for (const k of sub) section.append(cardSection(value, k, value[k], level + 1, `${id}-${k}`));
  } else section.append(renderValue(value, key, card, 0));
  return section;
}

const GROUP_TITLES = { "": "Image model", clinical: "Clinical risk model" };

async function renderCharts(host, charts) {
  clear(host);
  const groups = [...new Set(charts.map((c) => c.group || ""))];
  const grids = Object.fromEntries(groups.map((g) => [g, h("div", { class: "charts-grid" })]));
  for (const g of groups) {
    if (groups.length > 1) host.append(h("h3", { class: "charts-group-h", text: GROUP_TITLES[g] || humanize(g) }));
    host.append(grids[g]);
  }
  const figures = charts.map((chart) => {
    const key = chart.group ? `${chart.group}-${chart.id}` : chart.id;
    const plot = h("div", { class: "plot", id: `chart-${key}` });
    const fig = h("figure", { class: "chart", dataset: { chartId: chart.id, chartKey: key }, "aria-labelledby": `chart-${key}-h` },
      h("h4", { id: `chart-${key}-h`, text: chart.title || humanize(chart.id) }),
      chart.description ? h("p", { class: "muted small", text: chart.description }) : null,
      plot);
    grids[chart.group || ""].append(fig);
    return { chart, plot };
  });
  const Plotly = await loadPlotly();
  for (const { chart, plot } of figures) {
    const figure = chart.figure || {};
    const layout = { ...(figure.layout || {}) };
    delete layout.width;
    layout.autosize = true;
    layout.height = Math.min(Number(layout.height) || 360, 560);
    layout.title = undefined; // the figure already has an accessible heading
    // Legends above the plot, horizontal: side legends squeeze the plot in a half-width card.
    layout.legend = { orientation: "h", x: 0, xanchor: "left", y: 1.02, yanchor: "bottom", ...(layout.legend || {}) };
    layout.margin = { l: 56, r: 16, b: 48, ...(figure.layout?.margin || {}), t: 48 };
    layout.font = { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, ...(layout.font || {}) };
    layout.paper_bgcolor = "rgba(0,0,0,0)";
    try {
      await Plotly.newPlot(plot, figure.data || [], layout, { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] });
      plot.setAttribute("role", "img");
      plot.setAttribute("aria-label", `${chart.title || chart.id}. ${chart.description || ""}`);
    } catch (err) {
      plot.replaceWith(h("p", { class: "alert alert-error", text: `This chart could not be drawn: ${err.message}` }));
    }
  }
}

export class ModelView {
  constructor(api) {
    this.api = api;
    this.loaded = false;
  }

  async show() {
    if (this.loaded) return;
    this.loaded = true;
    const msg = $("model-msg");
    const chartsMsg = $("charts-msg");
    msg.textContent = "Loading the model card…";
    chartsMsg.textContent = "Loading charts…";
    const [card, metrics] = await Promise.allSettled([this.api.get("/model"), this.api.get("/metrics")]);
    if (card.status === "fulfilled") {
      msg.textContent = "";
      renderModelCard($("model-card"), card.value);
    } else {
      msg.textContent = `The model card could not be loaded: ${card.reason.message}`;
      this.loaded = false;
    }
    if (metrics.status === "fulfilled") {
      const charts = metrics.value.charts || [];
      chartsMsg.textContent = charts.length ? `${charts.length} charts for model version ${metrics.value.model_version || "?"}.` : "No charts were published with this model.";
      try {
        await renderCharts($("charts"), charts);
      } catch (err) {
        chartsMsg.textContent = `Charts could not be drawn: ${err.message}`;
        this.loaded = false;
      }
    } else {
      chartsMsg.textContent = `The charts could not be loaded: ${metrics.reason.message}`;
      this.loaded = false;
    }
  }

  reset() {
    this.loaded = false;
    clear($("model-card"));
    clear($("charts"));
  }
}
