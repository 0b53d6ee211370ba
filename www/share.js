// A shared link (`/share.html#s=…`): opens it (`POST /api/v1/shares/open`, with its password
// when it has one) for a read token of that site alone, short-lived, and shows the shared
// dashboard or heatmap with it, read-only (common.js hides the rest). The link's token stays
// in the fragment, never sent to a server in a URL.
(() => {
  const status = document.getElementById("status");
  const unlock = document.getElementById("unlock");
  const token = new URLSearchParams(location.hash.slice(1)).get("s") || "";

  async function open(password) {
    const body = { token };
    if (password) body.password = password;
    status.className = "status";
    status.textContent = "opening…";
    const r = await pl.api("POST", "/api/v1/shares/open", body);
    if (r.status === 401) {
      unlock.hidden = false;
      status.className = password ? "status error" : "status";
      status.textContent = password ? "Wrong password." : "";
      unlock.elements.password.focus();
      return;
    }
    if (!r.ok) {
      status.className = "status error";
      status.textContent = r.status === 404
        ? "This shared link is unknown, revoked or expired."
        : r.body?.detail || r.body?.error || `the collector answered ${r.status}`;
      return;
    }
    const s = r.body;
    sessionStorage.setItem("pl-token", s.read_token);
    sessionStorage.setItem("pl-shared", JSON.stringify({
      site: s.site, kind: s.kind, path: s.path || "", expires_ms: Date.now() + (s.expires_in || 0) * 1000,
    }));
    // The share's filters, then what it shows, which no filter overrides.
    const q = new URLSearchParams(s.filters || "");
    q.delete("token");
    q.set("site", s.site);
    if (s.kind === "heatmap") q.set("path", s.path);
    location.replace((s.kind === "heatmap" ? "heatmap.html?" : "./?") + q);
  }

  unlock.addEventListener("submit", (ev) => {
    ev.preventDefault();
    open(unlock.elements.password.value);
  });
  if (token) open();
  else status.textContent = "This page needs a shared link: open the link you were sent as it is.";
  document.body.dataset.ready = "1";
})();
