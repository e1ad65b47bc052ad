const previousRank = new Map();
function renderBoard(rows) {
  const body = document.querySelector("#board tbody");
  body.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    tr.dataset.contestant = r.contestant;
    const before = previousRank.get(r.contestant);
    if (before === undefined && previousRank.size) tr.className = "fresh";
    else if (before > r.rank) tr.className = "moved-up";
    else if (before < r.rank) tr.className = "moved-down";
    previousRank.set(r.contestant, r.rank);
    cell(tr, r.tied ? `=${r.rank}` : r.rank);
    const name = cell(tr, "");
    const link = document.createElement("a");
    link.href = `/submissions/${encodeURIComponent(r.partition)}`;
    link.textContent = r.contestant;
    name.appendChild(link);
    const range = r.final_range ? ` (${fmt(r.final_range[0])}–${fmt(r.final_range[1])})` : "";
    cell(tr, `${fmt(r.final)}${range}`, "final"); cell(tr, fmt(r.latency)); cell(tr, fmt(r.throughput));
    cell(tr, fmt(r.correctness)); cell(tr, fmt(r.p99_us, 0));
    cell(tr, `${r.client_limited ? "≥ " : ""}${fmt(r.orders_per_s, 0)}`, r.client_limited ? "limited" : "");
    cell(tr, fmt(r.cpu_us_per_order, 2));
    cell(tr, r.submissions); cell(tr, new Date(r.last_update * 1000).toLocaleTimeString());
    body.appendChild(tr);
  }
}
// A new score moves one contestant to the rank the server computed; the rows in between shift.
let board = [];
function moveRow(standing) {
  board = board.filter((r) => r.contestant !== standing.contestant);
  board.splice(standing.rank - 1, 0, standing);
  board.forEach((r, i) => { r.rank = i + 1; });
  renderBoard(board);
}
const recent = new Map();
function renderRecent() {
  const body = document.querySelector("#recent tbody");
  body.replaceChildren();
  const rows = [...recent.values()].sort((a, b) => (b.updated || 0) - (a.updated || 0)).slice(0, 50);
  for (const s of rows) {
    const tr = document.createElement("tr");
    const id = cell(tr, "");
    const link = document.createElement("a");
    link.href = `/submissions/${encodeURIComponent(s.partition)}`;
    link.textContent = s.partition;
    id.appendChild(link);
    cell(tr, s.contestant); cell(tr, s.stage, "stage"); cell(tr, fmt(s.final)); cell(tr, s.reason);
    body.appendChild(tr);
  }
}
QC.on((msg) => {
  if (msg.type === "init") { board = msg.leaderboard; renderBoard(board); msg.recent.forEach((s) => recent.set(s.partition, s)); renderRecent(); }
  if (msg.type === "final_score" && msg.standing) moveRow(msg.standing);
  if (msg.type === "status_update") { recent.set(msg.submission.partition, msg.submission); renderRecent(); }
  if (msg.type === "final_score") {
    const s = recent.get(msg.score.partition) || { partition: msg.score.partition };
    Object.assign(s, { stage: msg.score.status, final: msg.score.final, reason: msg.score.reason, contestant: msg.score.contestant });
    recent.set(s.partition, s); renderRecent();
  }
});
