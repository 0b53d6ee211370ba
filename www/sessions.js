// Session explorer: recent sessions with how they ended and who their signed-in user is, with
// the user's latest traits (/api/v1/sessions, the sessions mart and `users`), the timeline of
// one session (/api/v1/sessions/{id}) with the anomalies found in it, the sessions worth a look
// (/api/v1/anomalies), and frequent paths (/api/v1/patterns).
(() => {
  const form = document.getElementById("controls");
  pl.restore(form, ["site", "token", "session", "ended"]);
  const text = pl.text;
  const api = async (path) => {
    const r = await fetch("/api/v1/" + path, { headers: pl.headers(form.elements.token.value) });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error);
    return body;
  };
  const site = () => new URLSearchParams({ site: form.elements.site.value });
  let anomalies = { sessions: [] };
  /** The recent sessions last listed. */
  let listed = [];
  /** "user u-42 · plan: pro · seats: 3": a session's user and what the site said of them. */
  const who = (s) => (s && s.user_id ? ["user " + s.user_id, ...Object.entries(s.traits || {}).map(([k, v]) => `${k}: ${v}`)].join(" · ") : "");

  async function timeline() {
    const id = form.elements.session.value.trim();
    const table = document.getElementById("timeline");
    if (!id) { table.replaceChildren(text("tr", "no session chosen")); return; }
    const events = await api(`sessions/${encodeURIComponent(id)}?${site()}`);
    const flags = anomalies.sessions.find((s) => s.session_id === id);
    const t0 = events.length ? events[0].ts : 0;
    // A click on another element 10–99 ms after the click before: the API's `rapid` rule
    // (bench/results/anomalies.md), less its exception for a label's click passed on.
    let prev = null;
    table.replaceChildren(...events.map((e) => {
      const tr = document.createElement("tr");
      tr.className = "event";
      const gap = e.event_type === "click" && prev && prev.selector !== e.selector ? e.ts - prev.ts : 0;
      if (e.event_type === "click") prev = e;
      const what = e.event_type === "click" ? `click ${e.selector} at ${e.x},${e.y}`
        : e.event_type === "custom" ? `${e.name}`
        : e.event_type === "scroll" ? `scrolled to ${e.scroll_depth}%`
        : e.event_type === "engagement" ? `visible ${(e.visible_ms / 1000).toFixed(1)} s`
        : e.event_type;
      tr.append(text("td", `+${((e.ts - t0) / 1000).toFixed(2)} s`, "n"), text("td", e.path), text("td", what),
        text("td", gap >= 10 && gap < 100 ? "rapid" : "", "flag"));
      return tr;
    }));
    if (flags) table.prepend(text("tr", `anomalies: ${flags.rapid} rapid · ${flags.repeated} repeated · ${flags.loops} loops`));
    const user = who(listed.find((s) => s.session_id === id));
    if (user) table.prepend(text("tr", user, "user"));
    document.body.dataset.ready = "1";
  }

  const pick = (id) => {
    const link = text("a", id);
    link.href = "#";
    link.addEventListener("click", (e) => { e.preventDefault(); form.elements.session.value = id; timeline(); });
    const td = document.createElement("td");
    td.append(link);
    return td;
  };
  const ENDED = { closed: "closed", timed_out: "timed out", active: "active" };

  async function recent() {
    const q = site();
    q.set("limit", "50");
    if (form.elements.ended.value) q.set("ended", form.elements.ended.value);
    const list = await api("sessions?" + q);
    listed = list;
    document.getElementById("recent").replaceChildren(...list.map((s) => {
      const tr = document.createElement("tr");
      tr.className = "session";
      tr.append(pick(s.session_id), text("td", new Date(s.start_ms).toISOString().slice(5, 19).replace("T", " ")),
        text("td", `${s.duration_secs.toFixed(1)} s`, "n"), text("td", `${s.pageviews} pages · ${s.events} events`, "n"),
        text("td", `${s.entry} → ${s.exit}`), text("td", ENDED[s.ended], "ended"),
        text("td", s.anomalies ? "anomalies" : "", "flag"), text("td", who(s), "user"));
      return tr;
    }));
  }

  async function show(ev) {
    ev?.preventDefault();
    pl.remember(form, ["site", "token"]);
    const status = document.getElementById("status");
    try {
      const [a, p] = await Promise.all([api("anomalies?" + site()), api("patterns?" + site()), recent()]);
      anomalies = a;
      document.getElementById("anomalous").replaceChildren(...a.sessions.map((s) => {
        const tr = document.createElement("tr");
        tr.append(pick(s.session_id), text("td", `${s.rapid} rapid · ${s.repeated} repeated · ${s.loops} loops`, "n"));
        return tr;
      }));
      document.getElementById("patterns").replaceChildren(...p.frequent.map((g) => {
        const tr = document.createElement("tr");
        tr.append(text("td", g.actions.join(" → ")), text("td", `${g.sessions} sessions`, "n"));
        return tr;
      }));
      await timeline();
      status.textContent = "";
    } catch (e) {
      status.textContent = "error: " + e.message;
    }
  }
  form.addEventListener("submit", show);
  pl.ready.then(({ me }) => form.elements.site.value && (form.elements.token.value || me) && show());
})();
