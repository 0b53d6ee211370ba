// Search analytics over /api/v1/search: searches, click-through rate, zero-result rate, average
// clicked position and refinements in all (each with its definition from the API's OpenAPI
// document, www/FIGURES.md#search, as a tooltip), then the top queries, the refinements and
// the items found through search. The site's own event names are the collector's business
// (`[sites.search]`): this page reads the figures only.
(() => {
  const form = document.getElementById("controls");
  const status = document.getElementById("status");
  pl.restore(form, ["site", "token", "from", "to"]);
  const { text, explain } = pl;
  const WHOLE = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const whole = (v) => WHOLE.format(v);
  const pct = (v) => (v * 100).toFixed(1) + "%";
  const position = (v) => (v == null ? "–" : v.toFixed(1));

  /** The definitions of `totals`' fields, from the OpenAPI document; "" where it has none. */
  async function definitions() {
    try {
      const doc = await (await fetch("/api/v1/openapi.json")).json();
      const props = doc.paths["/search"].get.responses["200"].content["application/json"].schema.properties.totals.properties;
      return (field) => (props[field]?.description || "").replaceAll("`", "");
    } catch {
      return () => "";
    }
  }

  /**
   * Fills table `id`'s body with a row per item of `rows` (cells from `cells`, numbers aligned
   * as their column's header is), or a row saying `empty`.
   */
  function fill(id, rows, cells, empty) {
    const heads = [...document.querySelectorAll(`#${id} thead th`)];
    const body = document.querySelector(`#${id} tbody`);
    body.replaceChildren(...rows.map((r) => {
      const tr = document.createElement("tr");
      tr.append(...cells(r).map((c, i) => text("td", String(c), heads[i].className)));
      return tr;
    }));
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = text("td", empty);
      td.colSpan = heads.length;
      tr.append(td);
      body.append(tr);
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
    const [r, define] = await Promise.all([
      fetch("/api/v1/search?" + q, { headers: pl.headers(f.token.value) }),
      definitions(),
    ]);
    const s = await r.json();
    if (!r.ok) { status.textContent = "error: " + s.error; return; }
    status.textContent = "";
    const t = s.totals;
    document.getElementById("cards").replaceChildren(...[
      ["Searches", whole(t.searches), "searches", `in ${whole(t.sessions)} sessions`],
      ["Click-through rate", pct(t.ctr), "ctr", `${whole(t.clicks)} result clicks`],
      ["Zero-result rate", pct(t.zero_result_rate), "zero_result_rate"],
      ["Avg. clicked position", position(t.avg_position), "avg_position"],
      ["Refinement rate", pct(t.refinement_rate), "refinement_rate", `${whole(t.refinements)} refinements`],
    ].map(([label, value, field, note]) => {
      const c = text("div", "", "card");
      c.dataset.metric = label;
      c.append(text("b", value), text("span", label));
      if (note) c.append(text("small", note, "as-of"));
      explain(c, define(field));
      return c;
    }));
    fill("queries", s.queries, (x) => [x.query, whole(x.searches), pct(x.ctr), pct(x.zero_result_rate), position(x.avg_position), pct(x.refinement_rate)],
      "No searches in this range.");
    fill("refinements", s.refinements, (x) => [x.from, x.to, whole(x.count)], "No refinements in this range.");
    fill("items", s.items, (x) => [x.item, whole(x.from_search), whole(x.views), whole(x.add_to_cart), whole(x.purchases)],
      "No items clicked or viewed in this range.");
    document.body.dataset.ready = "1";
  }

  form.addEventListener("submit", show);
  pl.ready.then(({ me }) => form.elements.site.value && (form.elements.token.value || me) && show());
})();
