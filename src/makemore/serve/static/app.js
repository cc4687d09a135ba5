// The "Make more" page: samples from /api/sample (or a stream from /api/stream for text models), and the
// next-character bar chart from /api/next. No framework, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_BARS = 40; // a text model's vocabulary can be large: show its likeliest characters only
let info = null;
let items = [];
let chartToken = 0;

async function api(path, params) {
  const query = new URLSearchParams(params).toString();
  const response = await fetch(path + (query ? "?" + query : ""));
  if (!response.ok) {
    const body = await response.json().catch(() => ({ detail: response.statusText }));
    throw new Error(body.detail || response.statusText);
  }
  return response;
}

function settings() {
  const p = { temperature: $("temperature").value, prefix: $("prefix").value };
  if (Number($("top-k").value) > 0) p.top_k = $("top-k").value;
  return p;
}

function say(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function showOutputs() {
  $("n-out").textContent = $("n").value;
  $("length-out").textContent = $("length").value;
  $("temperature-out").textContent = Number($("temperature").value).toFixed(2);
  $("top-k-out").textContent = Number($("top-k").value) > 0 ? $("top-k").value : "off";
}

async function generate(event) {
  event.preventDefault();
  const button = $("generate-button");
  button.disabled = true;
  say(info.mode === "lines" ? "sampling…" : "writing…");
  try {
    if (info.mode === "lines") await sampleItems(); else await streamText();
  } catch (e) {
    say(e.message, true);
  } finally {
    button.disabled = false;
  }
}

async function sampleItems() {
  const params = { ...settings(), n: $("n").value };
  if ($("unique").checked) params.unique = "true";
  const t = performance.now();
  const data = await (await api("/api/sample", params)).json();
  items = data.items;
  const list = $("samples");
  list.replaceChildren(...items.map((s) => {
    const li = document.createElement("li");
    li.textContent = s;
    return li;
  }));
  const short = items.length < Number(params.n) ? ` (only ${items.length} new ones found)` : "";
  say(`${items.length} samples, seed ${data.seed}, ${Math.round(performance.now() - t)} ms${short}`);
}

async function streamText() {
  const out = $("continuation");
  out.hidden = false;
  out.textContent = $("prefix").value;
  const response = await api("/api/stream", { ...settings(), length: $("length").value });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out.textContent += value;
  }
  items = [out.textContent];
  say(`${out.textContent.length} characters`);
}

async function copyList() {
  const text = items.join("\n");
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = document.createElement("textarea"); // clipboard API refused: the old way
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  say(`copied ${items.length} ${items.length === 1 ? "item" : "items"}`);
}

function downloadList() {
  const url = URL.createObjectURL(new Blob([items.join("\n") + "\n"], { type: "text/plain" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = info.mode === "lines" ? "makemore-samples.txt" : "makemore-text.txt";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// The bar chart: one button per character, its height the probability.
async function drawChart() {
  const token = ++chartToken; // a slow answer to an older prefix must not overwrite a newer one
  $("why-prefix").textContent = $("prefix").value;
  let data;
  try {
    data = await (await api("/api/next", settings())).json();
  } catch (e) {
    if (token === chartToken) {
      $("bars").replaceChildren();
      $("context-before").textContent = "The model sees";
      $("context").textContent = "?";
      $("context-after").textContent = "";
      say(e.message, true);
    }
    return;
  }
  if (token !== chartToken) return;
  showContext(data.context, data.prefix);
  let probs = data.probs.map((p, i) => ({ ...p, end: info.mode === "lines" && i === 0 }));
  if (probs.length > MAX_BARS) probs = probs.slice().sort((a, b) => b.p - a.p).slice(0, MAX_BARS);
  const top = Math.max(...probs.map((p) => p.p), 1e-9);
  $("bars").replaceChildren(...probs.map((p) => bar(p, top)));
}

// What the model reads, as the server tells it, and how that compares with what was typed: a window model (an
// MLP) sees a fixed number of characters, padded before the start; a recurrent net reads everything so far
// through its state; a Transformer reads up to its context limit. The comparison is right for each.
function showContext(context, prefix) {
  const typed = (info.mode === "lines" ? info.boundary : "") + prefix;
  const n = context.length;
  let before = "The model reads all of";
  let after = "";
  if (!prefix) {
    before = "Before the first character, the model reads";
  } else if (n < typed.length) {
    before = `The model sees only the last ${n} character${n === 1 ? "" : "s"},`;
    after = " (earlier ones are out of its reach),";
  } else if (n > typed.length) {
    before = `The model sees a window of ${n} characters,`;
    after = " (padded before the start),";
  }
  $("context-before").textContent = before;
  $("context").textContent = JSON.stringify(context).slice(1, -1);
  $("context-after").textContent = after;
}

function bar(p, top) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "bar" + (p.end ? " end" : "") + (p.p === 0 ? " zero" : "");
  b.dataset.char = p.char;
  const shown = p.end ? "end" : p.char === " " ? "␣" : p.char === "\n" ? "↵" : p.char;
  const pct = (100 * p.p).toFixed(p.p < 0.001 ? 2 : 1);
  b.title = `${p.end ? "end of item" : JSON.stringify(p.char)}: ${pct}%`;
  b.setAttribute("aria-label", `${shown} ${pct}%`);
  const fill = document.createElement("span");
  fill.className = "fill";
  fill.style.height = `${(100 * p.p) / top}%`;
  const pctLabel = document.createElement("span");
  pctLabel.className = "pct";
  pctLabel.textContent = p.p >= 0.01 ? Math.round(100 * p.p) : "";
  const label = document.createElement("span");
  label.className = "char";
  label.textContent = shown;
  b.append(pctLabel, fill, label);
  b.addEventListener("click", () => {
    if (p.end) {
      say(`the model would end “${$("prefix").value}” here (${pct}%)`);
      return;
    }
    $("prefix").value += p.char;
    drawChart();
  });
  return b;
}

let chartTimer = 0;
function chartSoon() {
  clearTimeout(chartTimer);
  chartTimer = setTimeout(drawChart, 120);
}

// A recurrent model's block size is only the length of its training rows: its context has no limit.
function contextSize() {
  if (!("context_limit" in info)) return `context ${info.block_size}`;
  return info.context_limit === null ? "unbounded context (recurrent)" : `context ${info.context_limit}`;
}

async function start() {
  info = await (await api("/api/info")).json();
  const text = info.mode === "text";
  document.querySelectorAll(".lines-only").forEach((e) => { e.hidden = text; });
  document.querySelectorAll(".text-only").forEach((e) => { e.hidden = !text; });
  $("top-k").max = info.vocab.length;
  const loss = info.val_loss == null ? "" : `, val loss ${info.val_loss.toFixed(3)}`;
  $("model-info").textContent = `${info.model} model, ${info.mode} mode, ${info.vocab.length} tokens, ` +
    `${contextSize()}, step ${info.step}${loss}`;
  $("controls").addEventListener("submit", generate);
  for (const id of ["n", "length", "temperature", "top-k"]) $(id).addEventListener("input", showOutputs);
  for (const id of ["temperature", "top-k", "prefix"]) $(id).addEventListener("input", chartSoon);
  $("copy").addEventListener("click", copyList);
  $("download").addEventListener("click", downloadList);
  $("back").addEventListener("click", () => { $("prefix").value = $("prefix").value.slice(0, -1); drawChart(); });
  $("clear").addEventListener("click", () => { $("prefix").value = ""; drawChart(); });
  showOutputs();
  await drawChart();
  document.body.dataset.ready = "1"; // for tests and screenshots: the page has its first chart
}

start().catch((e) => say(e.message, true));
