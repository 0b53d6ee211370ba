// Sign-in (`POST /api/v1/auth/signin`): email and password, then the two-factor code when the
// answer is `totp_required`; back to the page that sent the browser here (`?next=`). While no
// account exists and this machine may make the first (`GET /api/v1/setup`), it links to the
// first-start form. A site's API token, the other way to read, is kept for this tab's session
// as a `#token=` link would be.
(() => {
  const form = document.getElementById("signin");
  const status = document.getElementById("status");
  const codeField = document.getElementById("code-field");
  const next = pl.next();

  async function start() {
    const [me, setup] = await Promise.all([pl.session, pl.api("GET", "/api/v1/setup")]);
    if (me) return location.replace(next);
    if (setup.ok && setup.body.open) {
      document.getElementById("first-start").href = "setup.html?" + new URLSearchParams({ next });
      document.getElementById("no-account").hidden = false;
    }
    document.body.dataset.ready = "1";
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = form.elements;
    const body = { email: f.email.value, password: f.password.value };
    if (!codeField.hidden && f.code.value.trim()) body.code = f.code.value.trim();
    status.className = "status";
    status.textContent = "signing in…";
    const r = await pl.api("POST", "/api/v1/auth/signin", body);
    if (r.ok) {
      pl.signedIn();
      location.replace(next);
      return;
    }
    const reason = r.body?.reason;
    if (reason === "totp_required" || reason === "totp_invalid") {
      codeField.hidden = false;
      f.code.focus();
    }
    status.className = "status error";
    status.textContent =
      reason === "totp_required" ? "Enter the two-factor code from your authenticator app, or one of your recovery codes."
      : reason === "invalid_credentials" ? "Wrong email or password."
      : r.body?.error || `the collector answered ${r.status}`;
  });

  document.getElementById("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("pl-token", ev.target.elements.token.value.trim());
    location.replace(next);
  });

  start();
})();
