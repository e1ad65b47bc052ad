document.getElementById("upload").onsubmit = async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const token = form.get("token");
  form.delete("token");
  if (!form.get("name")) form.delete("name");
  const res = await fetch("/api/submissions", { method: "POST", body: form, headers: { Authorization: `Bearer ${token}` } });
  const data = await res.json();
  document.getElementById("result").textContent = res.ok ? `uploaded ${data.key}: judging starts within seconds` : `refused: ${data.error}`;
};
