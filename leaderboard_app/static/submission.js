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
const SVG = "http://www.w3.org/2000/svg";
function svg(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}
const SERIES = ["corrected", "service", "send_lag"];
// x: how rare a latency is, log10(1 / (1 - p)), as HdrHistogram's percentile plots draw it (the
// tail gets the room); y: µs, log scale. 100 % is off such an axis: the table gives the maximum.
function percentilePlot(name, curves) {
  const W = 600, H = 160, left = 44, bottom = 18;
  const rare = (p) => Math.log10(100 / (100 - p));
  const idx = curves.percentiles.map((p, i) => i).filter((i) => curves.percentiles[i] < 100);
  const maxX = Math.max(...idx.map((i) => rare(curves.percentiles[i])));
  const floor = 0.1;  // a send lag of 0 µs still has a place on a log axis
  const values = SERIES.flatMap((s) => idx.map((i) => curves[s][i])).filter((v) => typeof v === "number");
  const lo = Math.floor(Math.log10(Math.max(floor, Math.min(...values))));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(floor, ...values))));
  const x = (p) => left + ((W - left - 8) * rare(p)) / maxX;
  const y = (v) => H - bottom - ((H - bottom - 8) * (Math.log10(Math.max(floor, v)) - lo)) / (hi - lo);
  const plot = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, "data-phase": name });
  for (const p of [0, 50, 90, 99, 99.9, 99.99].filter((p) => rare(p) <= maxX)) {
    plot.append(svg("line", { class: "grid", x1: x(p), x2: x(p), y1: 8, y2: H - bottom }),
      svg("text", { x: x(p) - 8, y: H - 4 }, `${p}`));
  }
  for (let d = lo; d <= hi; d++) {
    plot.append(svg("line", { class: "grid", x1: left, x2: W - 8, y1: y(10 ** d), y2: y(10 ** d) }),
      svg("text", { x: 2, y: y(10 ** d) + 3 }, `${10 ** d >= 1 ? 10 ** d : (10 ** d).toFixed(1)}`));
  }
  for (const s of SERIES) {
    const pts = idx.filter((i) => typeof curves[s][i] === "number").map((i) => `${x(curves.percentiles[i])},${y(curves[s][i])}`);
    if (pts.length) plot.append(svg("polyline", { class: s, points: pts.join(" ") }));
  }
  return plot;
}
function pct(x) { return typeof x === "number" ? `${(100 * x).toFixed(2)} %` : x; }
function rate(ph) { return ph.client_limited ? `≥ ${fmt(ph.orders_per_s, 1)}` : fmt(ph.orders_per_s, 1); }
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
    ["reason", s.reason || st.reason], ["final", s.final_range ? `${fmt(s.final)} (range over trials ${fmt(s.final_range[0])}–${fmt(s.final_range[1])})` : fmt(s.final)], ["latency", fmt(s.latency)],
    ["throughput", fmt(s.throughput)], ["correctness", fmt(s.correctness)], ["scoring preset", s.scoring]]) {
    const p = document.createElement("p"); p.textContent = `${k}: ${v ?? "–"}`; summary.appendChild(p);
  }
  const m = data.metrics || {}, body = document.querySelector("#phases tbody");
  const trialsBody = document.querySelector("#trials tbody"), invalid = document.getElementById("invalid");
  const plots = document.getElementById("percentiles");
  body.replaceChildren(); trialsBody.replaceChildren(); invalid.replaceChildren(); plots.replaceChildren();
  const phases = m.phases || {};
  for (const [name, ph] of Object.entries(phases)) {
    const tr = document.createElement("tr");
    tr.dataset.phase = name;
    const rerun = ph.invalid_trials?.count || 0;
    [name, `${(ph.trials || []).length}${rerun ? ` (+${rerun} re-run)` : ""}`, ph.orders, ph.exact].forEach((v) => cell(tr, v));
    [ph.p50_us, ph.p99_us, ph.p999_us, ph.service_p99_us, ph.send_lag_p99_us].forEach((v) => cell(tr, fmt(v, 1)));
    cell(tr, rate(ph), ph.client_limited ? "limited" : "");
    cell(tr, fmt(ph.cpu_us_per_order, 2));
    body.appendChild(tr);
    (ph.trials || []).forEach((t, i) => {
      const row = document.createElement("tr");
      row.dataset.phase = name;
      [name, i + 1].forEach((v) => cell(row, v));
      [t.p50_us, t.p99_us, t.service_p99_us, t.send_lag_p99_us].forEach((v) => cell(row, fmt(v, 1)));
      const leftOut = t.disturbed == null ? "" : `${t.disturbed}`;
      [rate(t), fmt(t.cpu_us_per_order, 2), pct(t.interference), leftOut, t.client_limited ? "yes" : "no"].forEach((v) => cell(row, v));
      trialsBody.appendChild(row);
    });
    for (const reason of ph.invalid_trials?.reasons || []) {
      const li = document.createElement("li");
      li.textContent = `phase ${name}: a trial was re-run: ${reason}`;
      invalid.appendChild(li);
    }
    if (ph.curves) {
      const fig = document.createElement("div");
      fig.className = "percentile";
      const title = document.createElement("h3");
      title.textContent = `phase ${name}`;
      fig.append(title, percentilePlot(name, ph.curves));
      plots.appendChild(fig);
    }
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
