// First start (`POST /api/v1/setup`): makes the first account, an admin of every site, and
// signs it in. The collector takes it only while no account exists, and only from its own
// machine unless `[accounts] setup_from_anywhere` (`GET /api/v1/setup` says whether it would).
(() => {
  const form = document.getElementById("setup");
  const status = document.getElementById("status");
  const done = pl.next("settings.html");

  /** Replaces the form with `why` and a way on. */
  function closed(why, link, label) {
    form.hidden = true;
    document.getElementById("intro").hidden = true;
    status.textContent = why + " ";
    if (link) {
      const a = pl.text("a", label);
      a.href = link;
      status.append(a);
    }
  }

  async function start() {
    const r = await pl.api("GET", "/api/v1/setup");
    if (!r.ok) closed(r.body?.error || `the collector answered ${r.status}`);
    else if (r.body.accounts) closed("An account exists already.", "signin.html?" + new URLSearchParams({ next: done }), "Sign in");
    else if (!r.body.open) {
      closed("The first-start form answers on the collector's own machine only: open this page there, or make the admin with `pathlight user add --admin`.");
    }
    document.body.dataset.ready = "1";
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = form.elements;
    status.className = "status error";
    if (f.password.value !== f.again.value) {
      status.textContent = "The two passwords differ.";
      f.again.focus();
      return;
    }
    status.className = "status";
    status.textContent = "making the account…";
    const r = await pl.api("POST", "/api/v1/setup", { email: f.email.value, password: f.password.value });
    if (r.ok) {
      pl.signedIn();
      location.replace(done);
      return;
    }
    status.className = "status error";
    status.textContent = r.body?.error || `the collector answered ${r.status}`;
  });

  start();
})();
