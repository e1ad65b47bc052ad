const partition = window.QC_PARTITION;
function line(svg, points) {
  svg.replaceChildren();
  if (!points.length) return;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const maxX = Math.max(1, ...xs), maxY = Math.max(1, ...ys);
  const poly = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  poly.setAttribute("points", points.map(([x, y]) => `${10 + (580 * x) / maxX},${150 - (140 * y) / maxY}`).join(" "));
  svg.appendChild(poly);
  const label = document.createElementNS("http://www.w3.org/2000/svg", "text");
  label.setAttribute("x", 12); label.setAttribute("y", 14); label.setAttribute("fill", "#889");
  label.textContent = `max ${maxY.toFixed(0)}`;
  svg.appendChild(label);
}
// The owner's token goes in the Authorization header only (never in a URL), kept for live reloads.
let token = "";
async function load() {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const res = await fetch(`/api/submissions/${encodeURIComponent(partition)}`, { headers });
  if (!res.ok) return;
  const data = await res.json();
  const s = data.score || {}, st = data.status || {};
  const summary = document.getElementById("summary");
  summary.replaceChildren();
  for (const [k, v] of [["contestant", s.contestant || st.contestant], ["stage", s.status || st.stage],
    ["reason", s.reason || st.reason], ["final", fmt(s.final)], ["latency", fmt(s.latency)],
    ["throughput", fmt(s.throughput)], ["correctness", fmt(s.correctness)]]) {
    const p = document.createElement("p"); p.textContent = `${k}: ${v ?? "–"}`; summary.appendChild(p);
  }
  const m = data.metrics || {}, body = document.querySelector("#phases tbody");
  body.replaceChildren();
  const phases = m.phases || {};
  for (const [name, ph] of Object.entries(phases)) {
    const tr = document.createElement("tr");
    [name, ph.orders, ph.exact].forEach((v) => cell(tr, v));
    [ph.p50_us, ph.p90_us, ph.p99_us, ph.p999_us, ph.orders_per_s].forEach((v) => cell(tr, fmt(v, 1)));
    body.appendChild(tr);
  }
  const windows = Object.values(phases).flatMap((ph, i) => (ph.windows || []).map((w) => ({ ...w, phase: i })));
  line(document.getElementById("latency"), windows.map((w, i) => [i, w.p99_us]));
  line(document.getElementById("throughput"), windows.map((w, i) => [i, w.orders]));
  if (data.private) {
    const box = document.getElementById("private");
    box.replaceChildren();
    for (const d of data.private.divergences || []) {
      const pre = document.createElement("pre");
      pre.textContent = `phase ${d.phase} order ${d.order_id}: ${d.reason}\nexpected ${JSON.stringify(d.expected)}\ngot      ${JSON.stringify(d.got)}`;
      box.appendChild(pre);
    }
    for (const line of [...(data.private.book_problems || []), ...(data.private.protocol_errors || [])]) {
      const pre = document.createElement("pre");
      pre.textContent = line;
      box.appendChild(pre);
    }
    const err = document.createElement("pre");
    err.textContent = data.private.stderr_tail || "(no stderr)";
    box.appendChild(err);
  }
}
document.getElementById("show").onclick = () => { token = document.getElementById("token").value; load(); };
QC.on((msg) => { if ((msg.partition || msg.score?.partition || msg.submission?.partition) === partition) load(); });
load();
