// mcnet ui: the topology, each cluster's reachability matrix, and the
// recorded flows, with the engine's explanation of any flow or cell.
// Served from the binary; talks only to its own origin.
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";
const auth = token ? { headers: { Authorization: "Bearer " + token } } : {};
const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function explain(text) {
  $("explain").hidden = false;
  $("why").textContent = text;
}

async function api(path) {
  const r = await fetch(path, auth);
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

async function showCluster(name, button) {
  for (const b of document.querySelectorAll("#clusters button")) b.classList.remove("on");
  button.classList.add("on");
  const box = $("cluster");
  box.textContent = "proving every pair…";
  const m = await api("/api/matrix?cluster=" + encodeURIComponent(name));
  box.textContent = "";
  const ports = [...new Set(m.cells.map((c) => c.port))].sort((a, b) => a - b);
  for (const port of ports) {
    const cells = m.cells.filter((c) => c.port === port);
    const rows = [...new Set(cells.map((c) => c.from))];
    const cols = [...new Set(cells.map((c) => c.to))];
    box.appendChild(el("h3", name + " · port " + port));
    const t = el("table");
    const head = el("tr");
    head.appendChild(el("th", "from \\ to"));
    cols.forEach((c) => head.appendChild(el("th", c)));
    t.appendChild(head);
    for (const r of rows) {
      const tr = el("tr");
      tr.appendChild(el("th", r));
      for (const c of cols) {
        const cell = cells.find((x) => x.from === r && x.to === c);
        const td = el("td", cell ? (cell.verdict === "allow" ? "✓" : "✗") : "", "cell " + (cell ? cell.verdict : ""));
        if (cell) {
          td.title = cell.stopped_at || "allowed";
          td.addEventListener("click", () =>
            explain(r + " → " + c + ":" + port + " — " +
              (cell.verdict === "allow" ? "allowed at every layer" : "stopped at " + cell.stopped_at + ": " + (cell.explanation || ""))));
        }
        tr.appendChild(td);
      }
      t.appendChild(tr);
    }
    box.appendChild(t);
  }
}

function matches(f) {
  const form = $("filters");
  const v = form.verdict.value, ns = form.namespace.value.trim(), id = form.identity.value.trim(), port = form.port.value.trim();
  if (v && f.verdict !== v) return false;
  if (ns && !f.namespaces.includes(ns)) return false;
  if (id && !f.identities.map(String).includes(id)) return false;
  if (port && String(f.port) !== port) return false;
  return true;
}

const flows = [];

function addFlow(f) {
  const tr = el("tr", undefined, f.verdict);
  tr.dataset.index = String(flows.length);
  flows.push(f);
  const req = f.http ? f.http[0] + " " + f.http[1] : "";
  [f.time, f.from, f.to, f.port + "/" + f.protocol, req, f.recorded || "", f.verdict].forEach((v, i) =>
    tr.appendChild(el("td", String(v), i === 6 ? "verdict" : undefined)));
  tr.addEventListener("click", () => explain(f.explanation));
  tr.hidden = !matches(f);
  $("flows").tBodies[0].prepend(tr);
}

function refilter() {
  for (const tr of $("flows").tBodies[0].rows) tr.hidden = !matches(flows[Number(tr.dataset.index)]);
}

function pairs(list) {
  return list.length ? list.map((p) => p[0] + " ↔ " + p[1]).join(", ") : "none";
}

async function showComponent(name) {
  const c = await api("/api/component?name=" + encodeURIComponent(name));
  const f = c.if_failed;
  const moved = f.moved.map((m) => m.from + " ↔ " + m.to + " (" + m.was + " → " + m.now + ")");
  explain(name + " carries the cluster pairs " + pairs(c.carries) +
    ". If it failed: networks disconnected " + pairs(f.disconnected) +
    "; degraded " + pairs(f.degraded) +
    "; moved " + (moved.length ? moved.join(", ") : "none") +
    (c.single_point_of_failure ? ". It is a single point of failure." : "."));
}

// The diagram is the `mcnet diagram` SVG: its cluster and link labels
// become links to the cluster's matrix and to the component's failure
// analysis.
function linkDiagram(t) {
  const byName = new Map(t.components.map((k) => [k.slice(k.indexOf("/") + 1), k]));
  for (const text of $("diagram").querySelectorAll("text")) {
    const label = text.textContent;
    const cluster = t.clusters.find((c) => label.startsWith(c.name + " ("));
    let component = byName.get(label);
    if (!component) {
      for (const [name, k] of byName) {
        if (label.endsWith(" " + name) || label.startsWith(name + ":")) component = k;
      }
    }
    if (!cluster && !component) continue;
    text.classList.add("link");
    text.setAttribute("role", "button");
    text.dataset.target = cluster ? "cluster/" + cluster.name : component;
    text.addEventListener("click", () => {
      if (cluster) {
        const b = document.querySelector('#clusters button[data-cluster="' + CSS.escape(cluster.name) + '"]');
        showCluster(cluster.name, b).catch((e) => explain(String(e)));
      } else {
        showComponent(component).catch((e) => explain(String(e)));
      }
    });
  }
}

async function main() {
  const t = await api("/api/topology");
  $("name").textContent = t.name;
  $("diagram").innerHTML = t.svg;
  const nav = $("clusters");
  for (const c of t.clusters) {
    const b = el("button", c.name + " (" + c.pods.length + " pods)");
    b.type = "button";
    b.dataset.cluster = c.name;
    b.addEventListener("click", () => showCluster(c.name, b).catch((e) => explain(String(e))));
    nav.appendChild(b);
  }
  linkDiagram(t);
  $("status").textContent = t.clusters.length + " clusters, " + t.networks.length + " networks";
  $("filters").addEventListener("input", refilter);
  if (t.flows) {
    const src = new EventSource("/api/flows" + (token ? "?token=" + encodeURIComponent(token) : ""));
    src.addEventListener("flow", (e) => addFlow(JSON.parse(e.data)));
  } else {
    $("flows-section").hidden = true;
  }
}

main().catch((e) => { $("status").textContent = String(e); });
