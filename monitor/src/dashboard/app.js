// The analyst's dashboard: reads the monitor's own API (same origin) every few seconds and
// draws it. No framework, no build step. Every value from the API is put into the page as
// text (textContent / createTextNode), never as markup: event members are untrusted input.
"use strict";

const REFRESH_MS = 5000;
const MINUTES = 180;
const SERIES = [
  ["passed", "Passed", "--passed"],
  ["failed", "Failed", "--failed"],
  ["novalidation", "No validation", "--novalidation"],
  ["complaints", "Complaints", "--complaints"],
];
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.appendChild(typeof child === "string" || typeof child === "number"
      ? document.createTextNode(String(child)) : child);
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function when(epoch) {
  return new Date(epoch * 1000).toISOString().replace("T", " ").replace(".000Z", "Z");
}

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const why = body && (body.error || body.message) ? (body.error || body.message) : response.statusText;
    throw new Error(`${path}: HTTP ${response.status} ${typeof why === "string" ? why : JSON.stringify(why)}`);
  }
  return body;
}

function drawChart(perMinute) {
  const box = document.getElementById("chart");
  const width = 900, height = 220, left = 40, bottom = 20, top = 8;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none" });
  const rows = perMinute || [];
  const total = (row) => SERIES.reduce((sum, [key]) => sum + (row[key] || 0), 0);
  const max = Math.max(1, ...rows.map(total));
  const plotHeight = height - bottom - top;
  const barWidth = rows.length ? (width - left) / rows.length : 0;
  const style = getComputedStyle(document.documentElement);
  chart.appendChild(svg("line", { x1: left, y1: top + plotHeight, x2: width, y2: top + plotHeight, stroke: "#999" }));
  const label = svg("text", { x: 2, y: top + 10, "font-size": 11, fill: "#555" });
  label.textContent = String(max);
  chart.appendChild(label);
  rows.forEach((row, i) => {
    let y = top + plotHeight;
    for (const [key, name, colour] of SERIES) {
      const n = row[key] || 0;
      if (!n) continue;
      const h = (n / max) * plotHeight;
      y -= h;
      const bar = svg("rect", {
        x: left + i * barWidth, y, width: Math.max(barWidth - 1, 1), height: h,
        fill: style.getPropertyValue(colour).trim(),
      });
      const tip = svg("title", {});
      tip.textContent = `${when(row.minute)}: ${n} ${name.toLowerCase()}`;
      bar.appendChild(tip);
      chart.appendChild(bar);
    }
  });
  if (rows.length) {
    for (const [i, anchor] of [[0, "start"], [rows.length - 1, "end"]]) {
      const t = svg("text", { x: left + i * barWidth + (anchor === "end" ? barWidth : 0), y: height - 4, "font-size": 11, fill: "#555", "text-anchor": anchor });
      t.textContent = when(rows[i].minute).slice(11, 16);
      chart.appendChild(t);
    }
  }
  box.replaceChildren(chart);
  const legend = document.getElementById("legend");
  legend.replaceChildren(...SERIES.map(([key, name, colour]) => {
    const item = el("li", {}, `${name} (${rows.reduce((s, r) => s + (r[key] || 0), 0)})`);
    item.style.setProperty("--c", `var(${colour})`);
    return item;
  }));
}

function callerLink(tn) {
  const a = el("a", { href: `#caller=${encodeURIComponent(tn)}` }, tn);
  return a;
}

function drawTop(top) {
  const rows = (top || []).map((t) => el("tr", {}, el("td", {}, callerLink(t.caller)), el("td", { class: "num" }, t.count)));
  document.getElementById("top-rows").replaceChildren(...rows);
}

function subjectNode(subject) {
  if (subject && subject.caller) return callerLink(subject.caller);
  if (subject && subject.spc) return el("a", { href: `#spc=${encodeURIComponent(subject.spc)}` }, `SPC ${subject.spc}`);
  return el("span", {}, JSON.stringify(subject));
}

function alertItem(alert) {
  const samples = (alert.samples || []).map((origid) => el("a", { href: `#origid=${encodeURIComponent(origid)}`, class: "sample" }, origid));
  const sampleLine = samples.length ? el("div", { class: "when" }, "calls: ", ...samples.flatMap((s, i) => (i ? [", ", s] : [s]))) : null;
  return el("li", { class: alert.closed ? "alert closed" : "alert", "data-id": alert.id },
    el("span", { class: "detector" }, alert.detector), subjectNode(alert.subject), " ",
    el("span", { class: "when" }, `${when(alert.time)}${alert.closed ? " (closed)" : ""}`),
    el("div", { class: "text" }, alert.text), sampleLine);
}

function drawAlerts(alerts) {
  const feed = document.getElementById("alert-feed");
  const items = (alerts || []).map(alertItem);
  feed.replaceChildren(...(items.length ? items : [el("li", { class: "when" }, "No alerts.")]));
}

// Renders any JSON value as nested tables and lists, as text.
function render(value) {
  if (Array.isArray(value)) {
    if (!value.length) return el("span", { class: "when" }, "none");
    if (value.every((v) => v && typeof v === "object" && !Array.isArray(v))) {
      const keys = [...new Set(value.flatMap((v) => Object.keys(v)))];
      return el("table", {}, el("thead", {}, el("tr", {}, ...keys.map((k) => el("th", {}, k)))),
        el("tbody", {}, ...value.map((v) => el("tr", {}, ...keys.map((k) => el("td", {}, cell(k, v[k])))))));
    }
    return el("span", {}, value.map((v) => (typeof v === "object" ? JSON.stringify(v) : String(v))).join(", "));
  }
  if (value && typeof value === "object") {
    return el("table", {}, el("tbody", {}, ...Object.entries(value).map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, cell(k, v))))));
  }
  return el("span", {}, value === null || value === undefined ? "" : String(value));
}

function cell(key, value) {
  if (key === "origid" && typeof value === "string") return el("a", { href: `#origid=${encodeURIComponent(value)}` }, value);
  if ((key === "from" || key === "caller") && typeof value === "string") return callerLink(value);
  if (key === "time" && typeof value === "number") return el("span", { title: String(value) }, when(value));
  return render(value);
}

async function showDetail() {
  const section = document.getElementById("detail");
  const body = document.getElementById("detail-body");
  const title = document.getElementById("detail-title");
  const params = new URLSearchParams(location.hash.slice(1));
  let path = null;
  if (params.get("caller")) { path = `/v1/callers/${encodeURIComponent(params.get("caller"))}`; title.textContent = `Caller ${params.get("caller")}`; }
  else if (params.get("spc")) { path = `/v1/spcs/${encodeURIComponent(params.get("spc"))}`; title.textContent = `Signing carrier ${params.get("spc")}`; }
  else if (params.get("origid")) { path = `/v1/traceback?origid=${encodeURIComponent(params.get("origid"))}`; title.textContent = `Traceback ${params.get("origid")}`; }
  if (!path) { section.hidden = true; return; }
  section.hidden = false;
  try {
    body.replaceChildren(render(await getJson(path)));
  } catch (error) {
    body.replaceChildren(el("p", { class: "error" }, error.message));
  }
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const [stats, alerts] = await Promise.all([getJson(`/v1/stats?minutes=${MINUTES}`), getJson("/v1/alerts?limit=50")]);
    drawChart(stats.per_minute);
    drawTop(stats.top_callers);
    drawAlerts(alerts.alerts);
    status.textContent = `events up to ${stats.time ? when(stats.time) : "none yet"} · ${stats.alerts_open || 0} open alerts · refreshed ${new Date().toLocaleTimeString()}`;
    status.className = "";
  } catch (error) {
    status.textContent = `refresh failed: ${error.message}`;
    status.className = "error";
  }
}

document.getElementById("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = document.getElementById("q").value.trim().replace(/^\+/, "");
  if (!q) return;
  location.hash = /^[0-9]{1,15}$/.test(q) ? `caller=${encodeURIComponent(q)}` : `origid=${encodeURIComponent(q)}`;
});
window.addEventListener("hashchange", showDetail);
refresh();
showDetail();
setInterval(refresh, REFRESH_MS);
