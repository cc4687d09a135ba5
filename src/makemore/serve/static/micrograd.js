// The micrograd page: POST the expression to /api/graph, show the SVG it draws and a table of the nodes.
"use strict";

const $ = (id) => document.getElementById(id);

function parseValues(text) {
  const values = {};
  for (const part of text.split(/[\s,;]+/).filter(Boolean)) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.+)$/.exec(part);
    if (!m || !Number.isFinite(Number(m[2]))) throw new Error(`values are name=number, not “${part}”`);
    values[m[1]] = Number(m[2]);
  }
  return values;
}

function fmt(x) {
  return Number.isInteger(x) ? String(x) : x.toPrecision(6).replace(/\.?0+$/, "");
}

async function draw(event) {
  if (event) event.preventDefault();
  $("error").hidden = true;
  let data;
  try {
    const body = { expr: $("expr").value, values: parseValues($("values").value),
                   rankdir: $("rankdir").value, backward: $("backward").checked };
    const response = await fetch("/api/graph", { method: "POST", headers: { "Content-Type": "application/json" },
                                                 body: JSON.stringify(body) });
    data = await response.json();
    if (!response.ok) throw new Error(data.detail || response.statusText);
  } catch (e) {
    $("error").textContent = e.message;
    $("error").hidden = false;
    return;
  }
  // Parsed as SVG (not HTML), then adopted: the drawing is dot's output, numbers and identifiers only.
  const svg = new DOMParser().parseFromString(data.svg, "image/svg+xml").documentElement;
  $("graph").replaceChildren(document.importNode(svg, true));
  $("result").textContent = `${data.label || "result"} = ${fmt(data.value)}` +
    ($("backward").checked ? " · gradients from backward()" : " · no backward: gradients are 0");
  $("nodes").tBodies[0].replaceChildren(...data.nodes.map((n) => {
    const tr = document.createElement("tr");
    for (const cell of [n.label || "·", n.op || "leaf", fmt(n.data), fmt(n.grad)]) {
      const td = document.createElement("td");
      td.textContent = cell;
      tr.append(td);
    }
    return tr;
  }));
  $("nodes").hidden = false;
}

$("graph-form").addEventListener("submit", draw);
for (const b of document.querySelectorAll(".example")) {
  b.addEventListener("click", () => {
    $("expr").value = b.dataset.expr;
    $("values").value = b.dataset.values;
    draw();
  });
}
draw().then(() => { document.body.dataset.ready = "1"; });
