// The signed-in account's own settings (`/api/v1/auth/*`): its sessions, each revocable; a
// password change, which needs the current password and ends the other sessions; two-factor
// sign-in, turned on with a code from the app after the `otpauth://` link is added to it, which
// answers with the recovery codes, shown once.
(() => {
  const { api, text, when } = pl;
  const status = document.getElementById("status");
  const say = (el, r, ok) => {
    el.className = r.ok ? "status" : "status error";
    el.textContent = r.ok ? ok : r.body?.error || `the collector answered ${r.status}`;
  };

  async function sessions() {
    const table = document.getElementById("sessions");
    const r = await api("GET", "/api/v1/auth/sessions");
    if (!r.ok) return table.replaceChildren(text("tr", r.body?.error || String(r.status)));
    const head = document.createElement("tr");
    head.append(...["Browser", "Signed in", "Until", ""].map((h) => text("th", h)));
    table.replaceChildren(head, ...r.body.sessions.map((s) => {
      const tr = document.createElement("tr");
      const cell = document.createElement("td");
      if (s.current) cell.append(text("span", "this browser"));
      else {
        const b = text("button", "Revoke");
        b.type = "button";
        b.setAttribute("aria-label", `Revoke the session of ${s.user_agent || "an unknown browser"}, signed in ${when(s.created_ms)}`);
        b.addEventListener("click", async () => {
          const done = await api("POST", "/api/v1/auth/sessions", { id: s.id });
          if (done.ok) sessions();
          else say(status, done, "");
        });
        cell.append(b);
      }
      tr.append(text("td", s.user_agent || "unknown browser"), text("td", when(s.created_ms)), text("td", when(s.expires_ms)), cell);
      return tr;
    }));
  }

  const pw = document.getElementById("password");
  pw.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = pw.elements;
    const said = document.getElementById("password-status");
    if (f.password.value !== f.again.value) {
      said.className = "status error";
      said.textContent = "The two new passwords differ.";
      return;
    }
    const r = await api("POST", "/api/v1/auth/password", { current: f.current.value, password: f.password.value });
    say(said, r, "Changed. Your other sessions were signed out.");
    if (r.ok) {
      pw.reset();
      sessions();
    }
  });

  // Two-factor: the secret is made by the collector and held only by this page until a code
  // made from it proves the app has it.
  let secret = "";
  const totpSaid = document.getElementById("totp-status");
  const enable = document.getElementById("totp-enable");
  document.getElementById("totp-start").addEventListener("click", async () => {
    const r = await api("POST", "/api/v1/auth/totp/setup");
    if (!r.ok) return say(totpSaid, r, "");
    secret = r.body.secret;
    document.getElementById("totp-link").textContent = r.body.link;
    document.getElementById("totp-secret").textContent = r.body.secret;
    enable.hidden = false;
    document.getElementById("totp-start").hidden = true;
    enable.elements.code.focus();
  });
  pl.copyButton(document.getElementById("totp-copy"), () => document.getElementById("totp-link").textContent,
    document.getElementById("totp-link-said"), document.getElementById("totp-link"));
  enable.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await api("POST", "/api/v1/auth/totp/enable", { secret, code: enable.elements.code.value.trim() });
    if (!r.ok) return say(totpSaid, r, "");
    secret = "";
    totpSaid.textContent = "";
    document.getElementById("totp-off").hidden = true;
    document.getElementById("codes").replaceChildren(...r.body.recovery_codes.map((c) => text("li", c)));
    document.getElementById("totp-codes").hidden = false;
  });
  const disable = document.getElementById("totp-disable");
  disable.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await api("POST", "/api/v1/auth/totp/disable", { password: disable.elements.password.value });
    say(totpSaid, r, "Two-factor is off.");
    if (r.ok) {
      disable.reset();
      disable.hidden = true;
      document.getElementById("totp-off").hidden = false;
    }
  });

  pl.ready.then(async ({ me }) => {
    if (!me) {
      // A token reads dashboards but has no account: the page says where to sign in.
      status.textContent = "Your account's settings need you to be signed in. ";
      const a = text("a", "Sign in");
      a.href = "signin.html?" + new URLSearchParams({ next: "/account.html" });
      status.append(a);
    } else {
      document.getElementById("email").textContent = me.email;
      // For password managers: the account whose password these forms take.
      for (const u of document.querySelectorAll("input.username")) u.defaultValue = me.email;
      document.getElementById(me.two_factor ? "totp-disable" : "totp-off").hidden = false;
      document.getElementById("account").hidden = false;
      await sessions();
    }
    document.body.dataset.ready = "1";
  });
})();
