// Shared by the dashboard pages: who reads (a signed-in account, or an API token), form fields
// restored from the URL or the last visit, figures' definitions as tooltips, and a small
// element builder.
//
// Reading needs a session (the `pathlight_session` cookie of `signin.html`, sent by the browser
// with every same-origin request) or a site's API token. The token never stays in a URL
// (address bars, history, logs and Referer headers keep those): a link brings it in the
// fragment (`#token=…`), which this takes once and removes from the address bar; it is kept in
// sessionStorage, for this tab's session only, until "Sign out". A page that needs a reader and
// has neither sends the browser to `signin.html`, which comes back here after signing in.
//
// The cookie is HttpOnly: no script can tell whether it is there. The pages keep a mark in
// localStorage once a sign-in has succeeded and ask `GET /api/v1/auth/me` only then, since that
// answers 401 to everyone else, an error on the console of every anonymous page.
(() => {
  const KEY = "pl-token";
  /** Set once a sign-in succeeded in this browser; see the file's doc. */
  const MARK = "pl-signed-in";
  /** A shared link's view (`share.html`): what it shows, read with the link's own token. */
  const SHARED = "pl-shared";
  const hash = new URLSearchParams(location.hash.slice(1));
  const search = new URLSearchParams(location.search);
  const fromHash = hash.get("token");
  if (fromHash) {
    sessionStorage.setItem(KEY, fromHash);
    sessionStorage.removeItem(SHARED);
  }
  if (hash.has("token") || search.has("token")) {
    // A token in the query string (links of earlier versions) has been sent to the server and
    // is not taken; both go from the address bar.
    hash.delete("token");
    search.delete("token");
    const q = search.toString(), h = hash.toString();
    history.replaceState(history.state, "", location.pathname + (q ? "?" + q : "") + (h ? "#" + h : ""));
  }
  // Earlier versions kept the token in localStorage, for good.
  localStorage.removeItem("pl-viewer-token");
  let tips = 0;
  const token = () => sessionStorage.getItem(KEY) || "";
  /**
   * Where a reader with neither session nor token goes, to come back here after: the first-start
   * form while no account exists (and this machine may make the first), else the sign-in form.
   */
  async function signInHere() {
    const next = new URLSearchParams({ next: location.pathname + location.search });
    const setup = await api("GET", "/api/v1/setup");
    return (setup.ok && setup.body?.open ? "setup.html?" : "signin.html?") + next;
  }

  /** An element with text content and an optional class. */
  function text(tag, t, cls) {
    const e = document.createElement(tag);
    e.textContent = t;
    if (cls) e.className = cls;
    return e;
  }

  /**
   * A JSON request to this collector's API with the session cookie: resolves to
   * `{ok, status, body}` (`body` null without one). A refusal's `body.error` says why.
   */
  async function api(method, path, body) {
    const init = { method, headers: {} };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let r;
    try {
      r = await fetch(path, init);
    } catch (e) {
      return { ok: false, status: 0, body: { error: "the collector did not answer: " + e.message } };
    }
    const type = r.headers.get("content-type") || "";
    const parsed = type.includes("json") ? await r.json().catch(() => null) : null;
    return { ok: r.ok, status: r.status, body: parsed };
  }

  /** The signed-in account (`/api/v1/auth/me`), or null; asked only after a sign-in here. */
  async function who() {
    if (!localStorage.getItem(MARK)) return null;
    const r = await api("GET", "/api/v1/auth/me");
    if (r.ok) return r.body;
    // Signed out elsewhere, revoked or expired.
    if (r.status === 401) localStorage.removeItem(MARK);
    return null;
  }

  /** The sites the account has a role on (`GET /api/v1/sites`); [] when unknown. */
  async function sitesOf(me) {
    if (!me) return [];
    const r = await api("GET", "/api/v1/sites");
    return r.ok && Array.isArray(r.body?.sites) ? r.body.sites : [];
  }

  const session = who();
  const ready = session.then(async (me) => ({ me, sites: await sitesOf(me) }));
  const isPublic = document.body.hasAttribute("data-public");
  const shared = (() => {
    try {
      return token() ? JSON.parse(sessionStorage.getItem(SHARED) || "null") : null;
    } catch {
      return null;
    }
  })();

  window.pl = {
    /** The API token of this tab's session, or "". */
    token,
    /** The headers reading with `t` (a token; none: the session cookie alone). */
    headers: (t) => (t ? { authorization: "Bearer " + t } : {}),
    /** Resolves to the signed-in account (`{email, admin, two_factor, session}`) or null. */
    session,
    /** Resolves to `{me, sites}` once the page knows who reads: the account and its sites. */
    ready,
    /** The shared link this tab shows (`{site, kind, path, expires_ms}`), or null. */
    shared,
    api,
    text,
    /** Marks a sign-in made by this page (see the file's doc). */
    signedIn() {
      localStorage.setItem(MARK, "1");
    },
    /** Forgets the session cookie (on the server too), the token, and the mark. */
    async signOut() {
      if (localStorage.getItem(MARK)) await api("POST", "/api/v1/auth/signout");
      localStorage.removeItem(MARK);
      sessionStorage.removeItem(KEY);
      sessionStorage.removeItem(SHARED);
    },
    /**
     * Where a page reached through `?next=` goes back to: a path of this origin only (never
     * `//host` or `/\host`, which browsers read as other hosts), else the dashboard.
     */
    next(fallback = "./") {
      const n = new URLSearchParams(location.search).get("next") || "";
      return /^\/(?![/\\])[^\s\\]*$/.test(n) ? n : fallback;
    },
    /** Fills `keys` of `form` from the query string, else from what `remember` stored. */
    restore(form, keys) {
      const params = new URLSearchParams(location.search);
      for (const k of keys) {
        const v = k === "token" ? sessionStorage.getItem(KEY) : params.get(k) ?? localStorage.getItem("pl-viewer-" + k);
        if (v != null && form.elements[k]) form.elements[k].value = v;
      }
    },
    /** Stores `keys` of `form` for the next visit (site, filters); the token for this session. */
    remember(form, keys) {
      for (const k of keys) {
        if (k === "token") {
          if (form.elements[k].value) sessionStorage.setItem(KEY, form.elements[k].value);
          else sessionStorage.removeItem(KEY);
        } else localStorage.setItem("pl-viewer-" + k, form.elements[k].value);
      }
    },
    /**
     * The element a stored click selector names in `doc`, or null. The tracker joins the
     * selectors of nested open shadow roots with " >>> ": each part is looked up in the shadow
     * root of the element the part before it found.
     */
    find(doc, selector) {
      let root = doc;
      let el = null;
      try {
        for (const part of selector.split(" >>> ")) {
          el = root && root.querySelector(part);
          if (!el) return null;
          root = el.shadowRoot;
        }
      } catch {
        return null;
      }
      return el;
    },
    /**
     * "Open on site": asks the API for a short-lived overlay token and opens the page on the
     * site itself with it in the fragment, where the tracker draws the live heatmap overlay.
     * Resolves to an error text, or null once opened.
     */
    async openOnSite(site, token, path) {
      const q = new URLSearchParams({ site, path });
      const r = await fetch("/api/v1/overlay-token?" + q, { headers: window.pl.headers(token) });
      const body = await r.json();
      if (!r.ok) return body.error || String(r.status);
      if (!body.url) return "the site has no base_url or origin to open";
      window.open(body.url, "_blank", "noopener");
      return null;
    },
    /**
     * Gives `el` its figure's `definition` (www/FIGURES.md) as a tooltip, shown on hover and
     * on keyboard focus, and as `data-definition`; nothing without one.
     */
    explain(el, definition) {
      el.querySelector(":scope > .tip")?.remove();
      if (!definition) return;
      const tip = text("span", definition, "tip");
      tip.id = "tip-" + ++tips;
      tip.setAttribute("role", "tooltip");
      el.tabIndex = 0;
      el.classList.add("has-tip");
      el.setAttribute("aria-describedby", tip.id);
      el.dataset.definition = definition;
      el.append(tip);
    },
    /**
     * Puts `value` on the clipboard when `button` is pressed, and says so in `said` (an
     * element with role=status). Without the Clipboard API (a page not served over HTTPS or
     * from this machine), the text in `source` is selected for the reader to copy.
     */
    copyButton(button, value, said, source) {
      button.addEventListener("click", async () => {
        try {
          await navigator.clipboard.writeText(value());
          said.textContent = "Copied.";
        } catch {
          if (source) getSelection().selectAllChildren(source);
          said.textContent = "Selected: copy it with Ctrl+C (⌘C).";
        }
      });
    },
    /** A date and time of the API (ms or s since 1970, or RFC 3339) as text; "never" for none. */
    when(v) {
      if (v === 0 || v === "" || v == null) return "never";
      const d = typeof v === "number" ? new Date(v < 1e11 ? v * 1000 : v) : new Date(v);
      return isNaN(d) ? String(v) : d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
    },
  };

  // Escape hides the tooltip under the pointer or focus (WCAG 1.4.13: dismissible).
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") for (const el of document.querySelectorAll(".has-tip:hover, .has-tip:focus")) el.classList.add("tip-off");
  });
  for (const ev of ["mouseout", "focusout"]) document.addEventListener(ev, (e) => e.target.closest?.(".tip-off")?.classList.remove("tip-off"));

  // Signing out forgets the session and the token, and leaves: no figures stay on the page.
  // Closing a shared view forgets its token only: the reader may be signed in too.
  document.getElementById("sign-out")?.addEventListener("click", async () => {
    if (shared) {
      sessionStorage.removeItem(KEY);
      sessionStorage.removeItem(SHARED);
      location.replace("./");
      return;
    }
    await window.pl.signOut();
    location.replace("signin.html");
  });

  // Who reads decides what the page offers: a signed-in account needs no token field, and sees
  // its email (its account page), Settings where it administers a site, and its sites to pick
  // from; a shared link's view shows that site alone.
  const form = document.getElementById("controls");
  const tokenLabel = form?.elements.token?.closest("label");
  if (shared) {
    if (tokenLabel) tokenLabel.hidden = true;
    if (form?.elements.site) form.elements.site.readOnly = true;
    for (const a of document.querySelectorAll(".top a.nav")) a.hidden = true;
    const out = document.getElementById("sign-out");
    if (out) out.textContent = "Close";
    document.querySelector(".top")?.append(text("span", `Shared view of ${shared.site}, read-only`, "nav"));
  }
  ready.then(async ({ me, sites }) => {
    document.body.dataset.reader = me ? "account" : token() ? "token" : "none";
    if (!me) {
      if (!token() && !isPublic) location.replace(await signInHere());
      return;
    }
    if (tokenLabel && !token()) tokenLabel.hidden = true;
    const out = document.getElementById("sign-out");
    if (out && !shared) {
      const account = text("a", me.email, "nav");
      account.href = "account.html";
      account.id = "account-link";
      out.before(account, " ");
      if ((me.admin || sites.some((s) => s.role === "admin")) && !location.pathname.endsWith("/settings.html")) {
        const settings = text("a", "Settings", "nav");
        settings.href = "settings.html";
        settings.id = "settings-link";
        account.before(settings, " ");
      }
    }
    const siteInput = form?.elements.site;
    if (siteInput && sites.length && !shared) {
      const list = document.createElement("datalist");
      list.id = "my-sites";
      list.append(...sites.map((s) => {
        const o = document.createElement("option");
        o.value = s.id;
        o.textContent = s.name && s.name !== s.id ? s.name : s.id;
        return o;
      }));
      form.append(list);
      siteInput.setAttribute("list", list.id);
      if (!siteInput.value) siteInput.value = sites[0].id;
    }
  });
})();
