// Settings: the sites the signed-in account administers, and for one of them its embed
// snippet, details, keys, members, invitations and shared links (`/api/v1/sites…`). Instance
// admins add sites. A site defined in the collector's file (`[[sites]]`) is read-only here.
// Everything the API answers is put on the page as text.
(() => {
  const { api, text, when } = pl;
  const status = document.getElementById("status");
  const $ = (id) => document.getElementById(id);
  /** `r`'s refusal as text. */
  const why = (r) => r.body?.detail || r.body?.error || `the collector answered ${r.status}`;
  /** Says `r`'s outcome in `el`: `ok` when it succeeded. */
  const say = (el, r, ok = "") => {
    el.className = r.ok ? "status" : "status error";
    el.textContent = r.ok ? ok : why(r);
  };
  /** Fills `table` with a header row and `rows` (arrays of text or nodes); `empty` when none. */
  function fill(table, heads, rows, empty) {
    const head = document.createElement("tr");
    head.append(...heads.map((h) => text("th", h)));
    const body = rows.map((cells) => {
      const tr = document.createElement("tr");
      tr.append(...cells.map((c) => {
        const td = document.createElement("td");
        td.append(c ?? "");
        return td;
      }));
      return tr;
    });
    if (!body.length) {
      const tr = document.createElement("tr");
      const td = text("td", empty);
      td.colSpan = heads.length;
      tr.append(td);
      body.push(tr);
    }
    table.replaceChildren(head, ...body);
  }
  /** A button saying `label` (`aria` for screen readers when the row gives the context) that runs `act`. */
  function button(label, aria, act) {
    const b = text("button", label);
    b.type = "button";
    if (aria) b.setAttribute("aria-label", aria);
    b.addEventListener("click", act);
    return b;
  }
  /** The end of the day a date input names, in the reader's time zone, as RFC 3339; undefined when empty. */
  const endOf = (date) => (date ? new Date(date + "T23:59:59").toISOString() : undefined);
  const origins = (s) => s.split(/[\s,]+/).filter(Boolean);
  const path = (id, ...rest) => ["/api/v1/sites", encodeURIComponent(id), ...rest.map(encodeURIComponent)].join("/");

  const zones = $("time-zones");
  for (const z of Intl.supportedValuesOf?.("timeZone") ?? []) {
    const o = document.createElement("option");
    o.value = z;
    zones.append(o);
  }
  $("add-site").elements.timezone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

  let me = null;
  let sites = [];
  /** The site shown below the list. */
  let current = null;

  async function loadSites() {
    const r = await api("GET", "/api/v1/sites");
    if (!r.ok) {
      say(status, r);
      return false;
    }
    sites = r.body.sites;
    const admin = (s) => me.admin || s.role === "admin";
    fill($("site-list"), ["Site", "Name", "Origins", "Defined in", "Your role", ""], sites.map((s) => [
      s.id, s.name || "", s.origins.join(" "), s.source === "file" ? "configuration file" : "settings", s.role,
      admin(s) ? button("Manage", `Manage ${s.id}`, () => select(s.id)) : "",
    ]), "No site yet.");
    return true;
  }

  /** Shows site `id`: its snippet, and to its admins its details, keys, members and links. */
  async function select(id) {
    current = sites.find((s) => s.id === id) || null;
    $("site").hidden = !current;
    if (!current) return;
    history.replaceState(history.state, "", "?" + new URLSearchParams({ site: id }));
    $("site-h").textContent = `Site ${current.id}` + (current.name && current.name !== current.id ? ` (${current.name})` : "");
    $("snippet").textContent = current.snippet || "";
    $("snippet-said").textContent = "";
    // A first-party tag loads from a path of the site itself, which must reach this collector.
    const src = /src="([^"]*)"/.exec(current.snippet || "")?.[1] || "";
    const help = $("snippet-help");
    help.hidden = !src.startsWith("/");
    help.textContent = `The tag loads the tracker from ${src.slice(0, src.lastIndexOf("/") + 1)} on the site itself, so that blockers let it through: your web server or edge forwards that path to this collector (${location.origin}/). The README's "Add it to your site" shows how, for nginx, Caddy and the edge worker.`;
    for (const id of ["new-key", "invite-link", "share-link"]) $(id).hidden = true;
    const admin = me.admin || current.role === "admin";
    $("site-admin").hidden = !admin;
    if (!admin) return;
    const fromFile = current.source === "file";
    $("read-only").hidden = !fromFile;
    const edit = $("edit-site");
    edit.hidden = fromFile;
    edit.elements.name.value = current.name || "";
    edit.elements.origins.value = current.origins.join(" ");
    edit.elements.timezone.value = current.timezone || "";
    edit.elements.base_url.value = current.base_url || "";
    $("edit-site-status").textContent = "";
    await Promise.all([keys(), members(), invitations(), shares()]);
  }

  async function keys() {
    const r = await api("GET", path(current.id, "keys"));
    if (!r.ok) return say($("keys-status"), r);
    fill($("keys"), ["Name", "Kind", "Reads", "Starts with", "Made", "Last used", "Expires", ""], r.body.keys.map((k) => [
      k.name, k.kind, (k.scopes || []).join(", "), k.prefix, when(k.created_at), k.last_used_at ? when(k.last_used_at) : "not yet",
      when(k.expires_at),
      k.revoked ? "revoked" : button("Revoke", `Revoke the key ${k.name}`, async () => {
        const done = await api("DELETE", path(current.id, "keys", k.id));
        say($("keys-status"), done, `The key ${k.name} is revoked.`);
        keys();
      }),
    ]), "No key yet.");
  }

  async function members() {
    const r = await api("GET", path(current.id, "members"));
    if (!r.ok) return say($("members-status"), r);
    fill($("members"), ["Email", "Role", ""], r.body.members.map((m) => {
      const role = document.createElement("select");
      role.setAttribute("aria-label", `Role of ${m.email}`);
      for (const name of ["viewer", "editor", "admin"]) role.append(new Option(name, name, false, name === m.role));
      role.addEventListener("change", async () => {
        const done = await api("PATCH", path(current.id, "members", m.account_id), { role: role.value });
        say($("members-status"), done, `${m.email} is now ${role.value}.`);
        if (!done.ok) role.value = m.role;
      });
      return [m.email, role, button("Remove", `Remove ${m.email}`, async () => {
        const done = await api("DELETE", path(current.id, "members", m.account_id));
        say($("members-status"), done, `${m.email} was removed.`);
        members();
      })];
    }), "No member yet: invite someone below.");
  }

  async function invitations() {
    const r = await api("GET", path(current.id, "invitations"));
    if (!r.ok) return say($("invite-status"), r);
    fill($("invitations"), ["Pending invitation", "For", "Expires", ""], (r.body.invitations || []).map((i) => [
      i.role, i.email || "anyone with the link", when(i.expires_at),
      button("Revoke", `Revoke the ${i.role} invitation`, async () => {
        const done = await api("DELETE", path(current.id, "invitations", i.id));
        say($("invite-status"), done, "The invitation is revoked.");
        invitations();
      }),
    ]), "No pending invitation.");
  }

  async function shares() {
    const r = await api("GET", path(current.id, "shares"));
    if (!r.ok) return say($("share-status"), r);
    fill($("shares"), ["Shared link", "Filters", "Password", "Expires", ""], (r.body.shares || []).map((s) => [
      s.kind === "heatmap" ? `heatmap of ${s.path}` : "dashboard", s.filters || "", s.password || s.has_password ? "yes" : "no",
      when(s.expires_at),
      s.revoked ? "revoked" : button("Revoke", `Revoke the shared ${s.kind} link`, async () => {
        const done = await api("DELETE", path(current.id, "shares", s.id));
        say($("share-status"), done, "The shared link is revoked.");
        shares();
      }),
    ]), "No shared link.");
  }

  /** Shows `url` (a path of this collector) as a full link in `box`, with its Copy button. */
  function showLink(box, pre, url) {
    pre.textContent = new URL(url, location.origin).href;
    box.hidden = false;
  }

  $("add-site").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target.elements;
    const body = { id: f.id.value.trim(), name: f.name.value.trim() || f.id.value.trim(), origins: origins(f.origins.value), timezone: f.timezone.value.trim() };
    if (f.base_url.value.trim()) body.base_url = f.base_url.value.trim();
    const r = await api("POST", "/api/v1/sites", body);
    say($("add-site-status"), r, `Added ${body.id}: copy its snippet below.`);
    if (!r.ok) return;
    ev.target.reset();
    f.timezone.value = body.timezone;
    await loadSites();
    await select(body.id);
    $("snippet").scrollIntoView({ block: "center" });
  });

  $("edit-site").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target.elements;
    const r = await api("PATCH", path(current.id), {
      name: f.name.value.trim(), origins: origins(f.origins.value), timezone: f.timezone.value.trim(), base_url: f.base_url.value.trim(),
    });
    say($("edit-site-status"), r, "Saved.");
    if (r.ok) {
      await loadSites();
      await select(current.id);
      $("edit-site-status").textContent = "Saved.";
    }
  });

  // Deleting asks twice, on the button itself (no dialog): the second press within 5 s deletes.
  const del = $("delete-site");
  let armed = null;
  del.addEventListener("click", async () => {
    if (!armed) {
      del.textContent = `Press again to delete ${current.id}`;
      armed = setTimeout(() => { armed = null; del.textContent = "Delete the site"; }, 5000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    del.textContent = "Delete the site";
    const id = current.id;
    const r = await api("DELETE", path(id));
    say($("edit-site-status"), r);
    if (r.ok) {
      await loadSites();
      $("site").hidden = true;
      status.textContent = `Deleted ${id}.`;
    }
  });

  const addKey = $("add-key");
  addKey.elements.kind.addEventListener("change", () => { $("scopes").hidden = addKey.elements.kind.value !== "read"; });
  addKey.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = addKey.elements;
    const body = { name: f.name.value.trim(), kind: f.kind.value };
    if (body.kind === "read") body.scopes = [...addKey.querySelectorAll("[name=scope]:checked")].map((c) => c.value);
    const expires = endOf(f.expires.value);
    if (expires) body.expires_at = expires;
    const r = await api("POST", path(current.id, "keys"), body);
    say($("keys-status"), r);
    if (!r.ok) return;
    $("new-key-text").textContent = r.body.key;
    $("new-key-said").textContent = "";
    $("new-key").hidden = false;
    addKey.reset();
    $("scopes").hidden = false;
    keys();
  });

  $("invite").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target.elements;
    const body = { role: f.role.value };
    if (f.email.value.trim()) body.email = f.email.value.trim();
    const r = await api("POST", path(current.id, "invitations"), body);
    say($("invite-status"), r);
    if (!r.ok) return;
    $("invite-said").textContent = "";
    showLink($("invite-link"), $("invite-url"), r.body.url);
    ev.target.reset();
    invitations();
  });

  $("share").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target.elements;
    const body = { kind: f.kind.value };
    if (f.path.value.trim()) body.path = f.path.value.trim();
    if (f.filters.value.trim()) body.filters = f.filters.value.trim().replace(/^\?/, "");
    if (f.password.value) body.password = f.password.value;
    const expires = endOf(f.expires.value);
    if (expires) body.expires_at = expires;
    const r = await api("POST", path(current.id, "shares"), body);
    say($("share-status"), r);
    if (!r.ok) return;
    $("share-said").textContent = "";
    showLink($("share-link"), $("share-url"), r.body.url);
    ev.target.reset();
    shares();
  });

  pl.copyButton($("copy-snippet"), () => $("snippet").textContent, $("snippet-said"), $("snippet"));
  pl.copyButton($("copy-key"), () => $("new-key-text").textContent, $("new-key-said"), $("new-key-text"));
  pl.copyButton($("copy-invite"), () => $("invite-url").textContent, $("invite-said"), $("invite-url"));
  pl.copyButton($("copy-share"), () => $("share-url").textContent, $("share-said"), $("share-url"));

  pl.ready.then(async (who) => {
    me = who.me;
    if (!me) {
      status.textContent = "Settings need you to be signed in. ";
      const a = text("a", "Sign in");
      a.href = "signin.html?" + new URLSearchParams({ next: "/settings.html" });
      status.append(a);
    } else if (!me.admin && !who.sites.some((s) => s.role === "admin")) {
      // Viewers and editors read; managing a site is its admins'.
      document.body.dataset.denied = "1";
      status.textContent = "Settings are for the admins of a site: your account reads dashboards and heatmaps. Ask an admin of the site to change your role.";
    } else if (await loadSites()) {
      $("manage").hidden = false;
      $("add-site").hidden = !me.admin;
      const wanted = new URLSearchParams(location.search).get("site");
      const first = sites.find((s) => s.id === wanted) || sites.find((s) => me.admin || s.role === "admin");
      if (first) await select(first.id);
    }
    document.body.dataset.ready = "1";
  });
})();
