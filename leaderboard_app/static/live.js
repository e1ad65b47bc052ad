// Live stream: one WebSocket, reconnects by itself with backoff; pages register handlers.
const QC = { handlers: [], on(fn) { this.handlers.push(fn); } };
(function connect(delay) {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws`);
  const dot = document.getElementById("conn");
  ws.onopen = () => { dot.classList.add("live"); delay = 250; };
  ws.onmessage = (ev) => { const msg = JSON.parse(ev.data); QC.handlers.forEach((fn) => fn(msg)); };
  ws.onclose = () => { dot.classList.remove("live"); setTimeout(() => connect(Math.min(delay * 2, 5000)), delay); };
})(250);
// Every value from a contestant goes in as text, never as HTML.
function cell(row, value, cls) {
  const td = document.createElement("td");
  td.textContent = value === null || value === undefined ? "–" : value;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}
function fmt(x, digits = 2) { return typeof x === "number" ? x.toFixed(digits) : x; }
