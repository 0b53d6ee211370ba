// Accepting an invitation (`POST /api/v1/invitations/accept`): the link an admin copied from
// Settings carries a one-time token in its fragment (`#t=…`, never sent to a server or kept in
// history). A signed-in visitor accepts it for their account; anyone else makes an account with
// it, which signs them in. The token waits in sessionStorage while the visitor signs in first.
(() => {
  const KEY = "pl-invitation";
  const status = document.getElementById("status");
  const fragment = new URLSearchParams(location.hash.slice(1)).get("t");
  if (fragment) {
    sessionStorage.setItem(KEY, fragment);
    history.replaceState(history.state, "", location.pathname);
  }
  const token = sessionStorage.getItem(KEY) || "";

  /** Accepts with `fields` (none when signed in); goes to the site's dashboard once in. */
  async function accept(fields = {}) {
    status.className = "status";
    status.textContent = "accepting…";
    const r = await pl.api("POST", "/api/v1/invitations/accept", { token, ...fields });
    if (!r.ok) {
      status.className = "status error";
      status.textContent = r.status === 404
        ? "This invitation is unknown, used or expired: ask the site's admin for a new link."
        : r.body?.detail || r.body?.error || `the collector answered ${r.status}`;
      return;
    }
    sessionStorage.removeItem(KEY);
    pl.signedIn();
    location.replace(r.body?.site ? "./?" + new URLSearchParams({ site: r.body.site }) : "./");
  }

  document.getElementById("accept").addEventListener("click", () => accept());
  const join = document.getElementById("join");
  join.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = join.elements;
    if (f.password.value !== f.again.value) {
      status.className = "status error";
      status.textContent = "The two passwords differ.";
      return;
    }
    accept({ email: f.email.value, password: f.password.value });
  });
  document.getElementById("signin-link").href = "signin.html?" + new URLSearchParams({ next: "/invite.html" });

  pl.session.then((me) => {
    if (!token) status.textContent = "This page needs the invitation link an admin sent you: open that link as it is.";
    else if (me) {
      document.getElementById("email").textContent = me.email;
      document.getElementById("as-member").hidden = false;
    } else document.getElementById("as-new").hidden = false;
    document.body.dataset.ready = "1";
  });
})();
