// Shared by the dashboard pages: the API token, form fields restored from the URL or the last
// visit, figures' definitions as tooltips, and a small element builder.
//
// The token never stays in a URL (address bars, history, logs and Referer headers keep those):
// a link brings it in the fragment (`#token=…`), which this takes once and removes from the
// address bar; it is kept in sessionStorage, for this tab's session only, until "Sign out".
(() => {
  const KEY = "pl-token";
  const hash = new URLSearchParams(location.hash.slice(1));
  const search = new URLSearchParams(location.search);
  const fromHash = hash.get("token");
  if (fromHash) sessionStorage.setItem(KEY, fromHash);
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

  window.pl = {
    /** The API token of this tab's session, or "". */
    token: () => sessionStorage.getItem(KEY) || "",
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
        if (k === "token") sessionStorage.setItem(KEY, form.elements[k].value);
        else localStorage.setItem("pl-viewer-" + k, form.elements[k].value);
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
      const r = await fetch("/api/v1/overlay-token?" + q, { headers: { authorization: "Bearer " + token } });
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
      const tip = window.pl.text("span", definition, "tip");
      tip.id = "tip-" + ++tips;
      tip.setAttribute("role", "tooltip");
      el.tabIndex = 0;
      el.classList.add("has-tip");
      el.setAttribute("aria-describedby", tip.id);
      el.dataset.definition = definition;
      el.append(tip);
    },
    /** An element with text content and an optional class. */
    text(tag, t, cls) {
      const e = document.createElement(tag);
      e.textContent = t;
      if (cls) e.className = cls;
      return e;
    },
  };

  // Escape hides the tooltip under the pointer or focus (WCAG 1.4.13: dismissible).
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") for (const el of document.querySelectorAll(".has-tip:hover, .has-tip:focus")) el.classList.add("tip-off");
  });
  for (const ev of ["mouseout", "focusout"]) document.addEventListener(ev, (e) => e.target.closest?.(".tip-off")?.classList.remove("tip-off"));

  // Signing out forgets the token and reloads, so no figures stay on the page.
  document.getElementById("sign-out")?.addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    location.replace(location.pathname + location.search);
  });
})();
