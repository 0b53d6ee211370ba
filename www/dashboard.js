// Traffic dashboard over /api/v1/stats: totals, active users, the daily series, top lists,
// each with its definition (www/FIGURES.md) as a tooltip. Plain DOM; uPlot's canvas charts.
(() => {
  // The stats field behind each top list.
  const PANELS = {
    "Top pages": "pages", "Entry pages": "entries", "Exit pages": "exits", Referrers: "referrers", Devices: "devices",
    Browsers: "browsers", "Operating systems": "os", Countries: "countries", Campaigns: "campaigns",
  };
  const WHOLE = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const form = document.getElementById("controls");
  const status = document.getElementById("status");
  pl.restore(form, ["site", "token", "from", "to"]);
  const text = pl.text;
  const explain = pl.explain;

  async function show(ev) {
    ev?.preventDefault();
    const f = form.elements;
    pl.remember(form, ["site", "token", "from", "to"]);
    const q = new URLSearchParams({ site: f.site.value });
    if (f.from.value) q.set("from", f.from.value);
    if (f.to.value) q.set("to", f.to.value);
    q.set("interval", f.interval.value);
    document.getElementById("to-heatmap").href = "heatmap.html?" + new URLSearchParams({ site: f.site.value });
    status.textContent = "loading…";
    // The figures' definitions are asked beside the figures, not after them: a round trip
    // less before the first figures on a real network.
    const [r, define] = await Promise.all([
      fetch("/api/v1/stats?" + q, { headers: pl.headers(f.token.value) }),
      definitions(),
    ]);
    const s = await r.json();
    if (!r.ok) { status.textContent = "error: " + s.error; return; }
    status.textContent = "";
    const cards = document.getElementById("cards");
    // Grouped digits in the reader's locale ("2,511,930", not "2511930", which wraps); an
    // average keeps a decimal only while it is small enough for one to mean something.
    const whole = (v) => WHOLE.format(v);
    const avg = (v) => (v == null ? "–" : v >= 100 ? whole(v) : v.toFixed(1));
    // Distinct counts from the traffic mart are approximate (FIGURES.md).
    const approx = (v) => (s.approximate && v !== "–" ? "≈ " + v : v);
    // A busy site's session figures for today come from the rollup of a few minutes ago.
    const rolledToday = s.session_figures_as_of_ms
      ? "today as of " + new Date(s.session_figures_as_of_ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : "";
    cards.replaceChildren(...[
      ["Visitors", approx(whole(s.visitors)), "visitors"], ["Sessions", approx(whole(s.sessions)), "sessions"],
      ["Page views", whole(s.pageviews), "pageviews"],
      ["Avg. session", s.avg_session_secs.toFixed(1) + " s", "avg_session_secs", rolledToday],
      ["Bounce rate", (s.bounce_rate * 100).toFixed(0) + "%", "bounce_rate", rolledToday],
      // Means over the range's complete days; today, under way, is its own card.
      ["DAU (avg.)", approx(avg(s.active.dau)), "active.dau"], ["WAU (avg.)", approx(avg(s.active.wau)), "active.wau"],
      ["MAU (avg.)", approx(avg(s.active.mau)), "active.mau"],
      ["Active today so far", s.active.today ? approx(whole(s.active.today.dau)) : "–", "active.today"],
      // Batches trackers could not send at first (then delivered) or dropped for good.
      ["Undelivered", `${s.undelivered.failed} late · ${s.undelivered.dropped} lost`, "undelivered"],
    ].map(([label, value, field, note]) => {
      const c = text("div", "", "card");
      c.dataset.metric = label;
      c.append(text("b", String(value)), text("span", label));
      if (note) c.append(text("small", note, "as-of"));
      explain(c, define(field));
      return c;
    }));
    for (const h of document.querySelectorAll("h3[data-field]")) explain(h, define(h.dataset.field));
    const current = f.interval.value === "hour" ? "this hour so far" : "today so far";
    chart = draw("series", chart, s.series, [
      { key: "pageviews", label: "Page views", stroke: "#2f6fed" },
      { key: "visitors", label: "Visitors", stroke: "#16a085" },
    ], current);
    activeChart = draw("active", activeChart, s.active.series, [
      { key: "dau", label: "DAU", stroke: "#2f6fed" },
      { key: "wau", label: "WAU", stroke: "#16a085" },
      { key: "mau", label: "MAU", stroke: "#8e44ad" },
    ], "today so far");
    Object.assign(window.pl, { chart, activeChart });
    const panels = document.getElementById("panels");
    panels.replaceChildren(...[
      ["Top pages", s.pages], ["Entry pages", s.entries], ["Exit pages", s.exits], ["Referrers", s.referrers], ["Devices", s.devices], ["Browsers", s.browsers],
      ["Operating systems", s.os], ["Countries", s.countries], ["Campaigns", s.campaigns],
    ].map(([title, rows]) => {
      const p = text("section", "", "card");
      const h = text("h3", title);
      p.append(h);
      explain(h, define(PANELS[title]));
      const t = document.createElement("table");
      const max = Math.max(1, ...rows.map((r) => r.count));
      for (const row of rows) {
        const tr = document.createElement("tr");
        const name = text("td", row.key);
        const bar = text("div", "", "bar");
        bar.style.width = (100 * row.count / max).toFixed(0) + "%";
        name.append(bar);
        if (title === "Top pages") {
          const a = document.createElement("a");
          a.href = "heatmap.html?" + new URLSearchParams({ site: f.site.value, path: row.key });
          a.textContent = " heatmap";
          const live = text("button", "open on site", "link");
          live.type = "button";
          live.title = "The live heatmap overlay on the site's own page";
          live.addEventListener("click", async () => {
            status.textContent = (await pl.openOnSite(f.site.value, f.token.value, row.key)) || "";
          });
          // A shared link reads figures only: it mints no overlay token.
          name.append(a, ...(pl.shared ? [] : [" ", live]));
        }
        tr.append(name, text("td", String(row.count), "n"));
        t.append(tr);
      }
      if (!rows.length) t.append(text("tr", "no data"));
      p.append(t);
      return p;
    }));
    document.body.dataset.ready = "1";
  }

  // Charts: uPlot (vendored in www/vendor by scripts/vendor-www.sh), 50 KB, canvas. The
  // current period (today, this hour) is still counting: it is drawn dashed, apart from the
  // complete ones, as a line of its own from the last complete point, so a partial day never
  // reads as a collapse.
  let chart = null;
  let activeChart = null;
  function draw(id, old, rows, lines, current) {
    const box = document.getElementById(id);
    old?.destroy();
    box.replaceChildren();
    if (!rows.length) return null;
    // "YYYY-MM-DD" or "YYYY-MM-DD HH:00:00", UTC.
    const t = rows.map((d) => Date.parse(d.day.length === 10 ? d.day + "T00:00:00Z" : d.day.replace(" ", "T") + "Z") / 1000);
    const last = rows.findLastIndex((r) => r.complete);
    const series = [{}];
    const data = [t];
    for (const l of lines) {
      series.push({ label: l.label, stroke: l.stroke, width: 2, points: { show: true } });
      data.push(rows.map((r) => (r.complete ? r[l.key] : null)));
    }
    if (rows.some((r) => !r.complete)) {
      for (const l of lines) {
        series.push({ label: `${l.label}, ${current}`, stroke: l.stroke, width: 2, dash: [6, 4], points: { show: true, fill: "#fff" } });
        data.push(rows.map((r, i) => (!r.complete || i === last ? r[l.key] : null)));
      }
    }
    const opts = {
      width: Math.max(280, box.clientWidth),
      height: 180,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      series,
      // A single day (or hour) would otherwise spread the axis over years.
      scales: { x: { time: true, range: (u, min, max) => (min === max ? [min - 43200, max + 43200] : [min, max]) } },
      axes: [{}, yAxis],
    };
    return new uPlot(opts, data, box);
  }

  // The y axis: short labels (20k, 1.5M) where they are exact, else the whole number; and as
  // wide as its widest label, measured in the axis' font, so none is clipped at any magnitude
  // (a fixed 50 px showed 20,000 as "0,000").
  const UNITS = [[1e9, "B"], [1e6, "M"], [1e3, "k"]];
  function yLabel(v) {
    if (v == null) return "";
    for (const [n, unit] of UNITS) {
      const scaled = v / n;
      if (Math.abs(v) >= n && Math.abs(scaled * 100 - Math.round(scaled * 100)) < 1e-6) {
        return scaled.toLocaleString(undefined, { maximumFractionDigits: 2 }) + unit;
      }
    }
    return v.toLocaleString(undefined, { maximumFractionDigits: 2 });
  }
  // A canvas of its own: uPlot keeps track of the font it last set on the chart's.
  const measure = document.createElement("canvas").getContext("2d");
  const yAxis = {
    values: (u, splits) => splits.map(yLabel),
    size(u, values, i, cycle) {
      const axis = u.axes[i];
      // uPlot sizes the axes again until they settle; stop after two rounds.
      if (cycle > 1) return axis._size;
      measure.font = axis.font[0];
      const widest = Math.max(0, ...(values ?? []).map((v) => measure.measureText(v).width)) / uPlot.pxRatio;
      return Math.ceil((axis.ticks.show ? axis.ticks.size : 0) + axis.gap + widest + 2);
    },
  };

  // Each figure's definition (www/FIGURES.md), from the API's OpenAPI document, where it is
  // the field's description: shown as the figure's tooltip, on hover and on keyboard focus.
  let defs = null;
  async function definitions() {
    if (!defs) {
      try {
        const doc = await (await fetch("/api/v1/openapi.json")).json();
        const props = doc.paths["/stats"].get.responses["200"].content["application/json"].schema.properties;
        defs = (field) => {
          const [a, b] = field.split(".");
          const p = b ? props[a]?.properties?.[b] : props[a];
          return (p?.description || "").replaceAll("`", "");
        };
      } catch {
        defs = () => "";
      }
    }
    return defs;
  }
  const auth = () => pl.headers(form.elements.token.value);

  // The funnel's steps are the site's own (pages or custom event names): from `?steps=`, else
  // those last run for the site. None yet: nothing is asked, and the card says what to enter.
  const stepsInput = document.querySelector("#funnel-form [name=steps]");
  const stepsKey = () => "pl-viewer-steps-" + form.elements.site.value;
  const restoreSteps = () => { stepsInput.value = localStorage.getItem(stepsKey()) ?? ""; };
  stepsInput.value = new URLSearchParams(location.search).get("steps") ?? localStorage.getItem(stepsKey()) ?? "";

  async function funnel(ev) {
    ev?.preventDefault();
    const table = document.getElementById("funnel");
    // The API takes steps as written; "/a, /b" as typed means "/a,/b".
    const steps = stepsInput.value.split(",").map((s) => s.trim()).filter(Boolean).join(",");
    if (!steps) {
      table.replaceChildren(text("tr", "Enter the steps (pages or custom event names, comma-separated) and Run."));
      return;
    }
    localStorage.setItem(stepsKey(), steps);
    const q = new URLSearchParams({ site: form.elements.site.value, steps });
    if (form.elements.from.value) q.set("from", form.elements.from.value);
    if (form.elements.to.value) q.set("to", form.elements.to.value);
    const r = await fetch("/api/v1/funnel?" + q, { headers: auth() });
    const body = await r.json();
    if (!r.ok) { table.replaceChildren(text("tr", body.error)); return; }
    table.replaceChildren(...body.steps.map((s) => {
      const tr = document.createElement("tr");
      const name = text("td", s.step);
      const bar = text("div", "", "bar");
      bar.style.width = (s.conversion * 100).toFixed(0) + "%";
      name.append(bar);
      const time = s.median_secs_from_previous == null ? "" : `median ${s.median_secs_from_previous.toFixed(1)} s after the previous step`;
      tr.append(name, text("td", String(s.sessions), "n"), text("td", (s.conversion * 100).toFixed(0) + "%", "n"), text("td", time));
      return tr;
    }));
  }

  // The live feed: a WebSocket (with a live token, since a browser's WebSocket sends no
  // headers), else Server-Sent Events read with fetch (EventSource cannot send the bearer token).
  let liveStop = null;
  let count = 0;
  const feed = document.getElementById("live-feed");
  function arrived(e) {
    document.getElementById("live-count").textContent = ++count;
    shown(text("li", `${new Date(e.ts).toLocaleTimeString()} ${e.kind} ${e.path} ${e.name || e.selector || ""}`));
  }
  // The feed dropped `missed` events for this page (it read too slowly): said, never counted.
  function fellBehind(missed) {
    shown(text("li", `${missed} events not shown: the feed fell behind`, "lagged"));
  }
  function shown(li) {
    feed.prepend(li);
    while (feed.children.length > 20) feed.lastChild.remove();
  }
  // One Server-Sent Events frame: its `event` ("message" when unnamed) and its data lines;
  // data null for a comment (`: ping`).
  function sseFrame(frame) {
    let event = "message";
    const data = [];
    for (const line of frame.split("\n")) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    return { event, data: data.length ? data.join("\n") : null };
  }
  window.pl.sseFrame = sseFrame;
  async function live() {
    liveStop?.();
    count = 0;
    const site = form.elements.site.value;
    const rt = await fetch("/api/v1/realtime?" + new URLSearchParams({ site }), { headers: auth() });
    if (rt.ok) document.getElementById("live-visitors").textContent = (await rt.json()).visitors;
    document.body.dataset.live = (await liveSocket(site)) ? "websocket" : "sse";
    if (document.body.dataset.live === "sse") liveStream(site);
  }
  async function liveSocket(site) {
    const t = await fetch("/api/v1/live-token?" + new URLSearchParams({ site }), { headers: auth() });
    if (!t.ok || !window.WebSocket) return false;
    const { token } = await t.json();
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/api/v1/realtime/ws?` + new URLSearchParams({ site, token }));
    // Protocol v1 (collector/src/http/ws.rs): the snapshot and the heartbeats keep the
    // current visitors fresh; events are counted.
    ws.onmessage = (m) => {
      const e = JSON.parse(m.data);
      if (e.type === "event") arrived(e);
      else if (e.type === "lagged") fellBehind(e.missed);
      else if ((e.type === "snapshot" || e.type === "heartbeat") && e.visitors != null) {
        document.getElementById("live-visitors").textContent = e.visitors;
      }
    };
    return new Promise((resolve) => {
      ws.onopen = () => { liveStop = () => ws.close(1000); resolve(true); };
      ws.onerror = () => resolve(false);
    });
  }
  async function liveStream(site) {
    const abort = new AbortController();
    liveStop = () => abort.abort();
    const r = await fetch("/api/v1/realtime/stream?" + new URLSearchParams({ site }), { headers: auth(), signal: abort.signal });
    if (!r.ok || !r.body) return;
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ done: true }));
      if (done) return;
      buf += value;
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const { event, data } = sseFrame(buf.slice(0, i));
        buf = buf.slice(i + 2);
        if (data == null) continue;
        if (event === "message") arrived(JSON.parse(data));
        else if (event === "lagged") fellBehind(Number(data));
      }
    }
  }

  async function anomalies() {
    const q = new URLSearchParams({ site: form.elements.site.value });
    if (form.elements.from.value) q.set("from", form.elements.from.value);
    if (form.elements.to.value) q.set("to", form.elements.to.value);
    const table = document.getElementById("anomalies");
    table.replaceChildren(text("tr", "loading…", "loading"));
    const r = await fetch("/api/v1/anomalies?" + q, { headers: auth() });
    const a = await r.json();
    if (!r.ok) { table.replaceChildren(text("tr", a.error)); return; }
    const rows = [
      ...a.sessions.map((s) => [`session ${s.session_id}`, `${s.rapid} rapid · ${s.repeated} repeated · ${s.loops} loops`, s.events + " events"]),
      ...a.rage.map((e) => [`rage clicks on ${e.selector}`, `${e.count} bursts`, e.sessions + " sessions"]),
      ...a.dead.map((e) => [`dead clicks on ${e.selector}`, `${e.count} clicks`, e.sessions + " sessions"]),
    ];
    table.replaceChildren(...rows.map((cells) => {
      const tr = document.createElement("tr");
      tr.append(...cells.map((c, i) => text("td", String(c), i ? "n" : "")));
      return tr;
    }));
    if (!rows.length) table.append(text("tr", "none found"));
  }

  document.getElementById("funnel-form").addEventListener("submit", funnel);
  form.addEventListener("submit", () => anomalies());
  form.addEventListener("submit", () => { restoreSteps(); funnel(); if (!pl.shared) live(); });
  form.addEventListener("submit", show);
  // Once the page knows who reads: with a token or a session, and a site (the reader's first
  // when none was named).
  pl.ready.then(({ me }) => {
    if (!(form.elements.site.value && (form.elements.token.value || me))) return;
    show(); funnel(); anomalies();
    // A shared link's token reads no live feed.
    if (!pl.shared) live();
  });
})();
