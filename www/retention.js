// Retention over /api/v1/retention: the known users' cohorts by the week they were first seen,
// as a triangle whose cells are shaded by the share of the cohort active again that week, and
// what can be counted of anonymous visitors (returns within a day), with what cannot, in the
// API's own words. Figures' definitions come from the OpenAPI document, as tooltips. Every
// text is set as text, never as HTML.
(() => {
  const form = document.getElementById("controls");
  const status = document.getElementById("status");
  pl.restore(form, ["site", "token", "from", "to"]);
  const { text, explain } = pl;
  const WHOLE = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const whole = (v) => WHOLE.format(v);
  const pct = (v) => (v * 100).toFixed(1) + "%";

  /** The definitions of the answer's fields, from the OpenAPI document; "" where it has none. */
  async function definitions() {
    try {
      const doc = await (await fetch("/api/v1/openapi.json")).json();
      const props = doc.paths["/retention"].get.responses["200"].content["application/json"].schema.properties;
      const fields = { ...props.anonymous.properties, users: props.cohorts.items.properties.users };
      return (field) => (fields[field]?.description || "").replaceAll("`", "");
    } catch {
      return () => "";
    }
  }

  /**
   * A cell's shade for `share` (0–1): lighter with dark text below one half, darker with white
   * text from it, each pair at least 4.5:1 (WCAG AA) whatever the share.
   */
  function shade(share) {
    const light = share < 0.5 ? 97 - share * 62 : 52 - (share - 0.5) * 48;
    return { background: `hsl(220 70% ${light.toFixed(1)}%)`, color: share < 0.5 ? "#1d2330" : "#fff" };
  }

  /** The triangle: a row per cohort, a column per week since it was first seen. */
  function triangle(r) {
    const weeks = r.cohorts.length;
    const head = document.createElement("tr");
    head.append(text("th", "First seen (week of)"), text("th", "Users", "n"));
    for (let k = 0; k < weeks; k++) head.append(text("th", k === 0 ? "Week 0" : `+${k}`, "n"));
    for (const th of head.cells) th.scope = "col";
    document.querySelector("#cohorts thead").replaceChildren(head);
    document.querySelector("#cohorts tbody").replaceChildren(...r.cohorts.map((c) => {
      const tr = document.createElement("tr");
      const week = text("th", c.week);
      week.scope = "row";
      tr.append(week, text("td", whole(c.users), "n"));
      c.active.forEach((n, k) => {
        const share = c.share[k];
        const td = text("td", share == null ? "–" : pct(share), "n cell");
        td.title = share == null ? "no users first seen this week" : `${whole(n)} of ${whole(c.users)} active in week ${k}`;
        if (share != null) Object.assign(td.style, shade(share));
        // The week under way: each cohort's last cell, counted so far.
        if (r.partial_week && k === c.active.length - 1) td.classList.add("partial");
        tr.append(td);
      });
      // The cells past the range's last week, blank.
      for (let k = c.active.length; k < weeks; k++) tr.append(text("td", ""));
      return tr;
    }));
    if (!weeks) {
      const tr = document.createElement("tr");
      const td = text("td", "No weeks in this range.");
      td.colSpan = 3;
      tr.append(td);
      document.querySelector("#cohorts tbody").append(tr);
    }
  }

  function anonymous(a) {
    document.getElementById("not-counted").textContent = "Not counted: " + a.not_counted;
    const heads = [...document.querySelectorAll("#anonymous thead th")];
    document.querySelector("#anonymous tbody").replaceChildren(...a.weeks.map((w) => {
      const tr = document.createElement("tr");
      const cells = [w.week, whole(w.visitor_days), whole(w.returning),
        w.visitor_days ? pct(w.returning / w.visitor_days) : "–",
        w.visitor_days ? (w.sessions / w.visitor_days).toFixed(2) : "–"];
      tr.append(...cells.map((c, i) => text("td", c, heads[i].className)));
      return tr;
    }));
    if (!a.weeks.length) {
      const tr = document.createElement("tr");
      const td = text("td", "No weeks in this range.");
      td.colSpan = heads.length;
      tr.append(td);
      document.querySelector("#anonymous tbody").append(tr);
    }
  }

  async function show(ev) {
    ev?.preventDefault();
    const f = form.elements;
    pl.remember(form, ["site", "token", "from", "to"]);
    const q = new URLSearchParams({ site: f.site.value });
    if (f.from.value) q.set("from", f.from.value);
    if (f.to.value) q.set("to", f.to.value);
    status.textContent = "loading…";
    const [resp, define] = await Promise.all([
      fetch("/api/v1/retention?" + q, { headers: pl.headers(f.token.value) }),
      definitions(),
    ]);
    const r = await resp.json();
    if (!resp.ok) { status.textContent = "error: " + r.error; return; }
    const notes = [`Weeks ${r.from} to ${r.to}, Monday to Sunday in ${r.timezone}.`];
    if (r.truncated) notes.push("The range has more than 104 weeks: the last 104 are shown.");
    if (r.partial_week) notes.push(`The week of ${r.partial_week} is under way: its cells (outlined) count so far.`);
    status.textContent = notes.join(" ");
    const a = r.anonymous;
    const users = r.cohorts.reduce((n, c) => n + c.users, 0);
    document.getElementById("cards").replaceChildren(...[
      ["Known users first seen", whole(users), "users", `in ${whole(r.cohorts.length)} weeks`],
      ["Anonymous visitor-days", whole(a.visitor_days), "visitor_days"],
      ["Back the same day", pct(a.returning_share), "returning_share", `${whole(a.returning)} of ${whole(a.visitor_days)}`],
      ["Sessions per visitor-day", a.sessions_per_visitor_day.toFixed(2), "sessions_per_visitor_day", `${whole(a.sessions)} sessions`],
    ].map(([label, value, field, note]) => {
      const c = text("div", "", "card");
      c.dataset.metric = label;
      c.append(text("b", value), text("span", label));
      if (note) c.append(text("small", note, "as-of"));
      explain(c, define(field));
      return c;
    }));
    triangle(r);
    anonymous(a);
    document.body.dataset.ready = "1";
  }

  form.addEventListener("submit", show);
  pl.ready.then(({ me }) => form.elements.site.value && (form.elements.token.value || me) && show());
})();
