document.getElementById("upload").onsubmit = async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const token = form.get("token");
  form.delete("token");
  if (!form.get("name")) form.delete("name");
  const result = document.getElementById("result");
  let res;
  try {
    res = await fetch("/api/submissions", { method: "POST", body: form, headers: { Authorization: `Bearer ${token}` } });
  } catch {
    // A refusal sent before the file was read (server busy, file too large) can reach a browser as a
    // closed connection rather than an answer.
    result.textContent = "refused: the connection closed (server busy or file over 50 MiB); retry in a minute";
    return;
  }
  const data = await res.json();
  result.textContent = res.ok ? `uploaded ${data.key}: judging starts within seconds` : `refused: ${data.error}`;
};
