// Traffic dashboard over /api/v1/stats: totals, a daily series, top lists. Plain DOM and SVG.
(() => {
  const form = document.getElementById("controls");
  const status = document.getElementById("status");
  pl.restore(form, ["site", "token", "from", "to"]);
  const text = pl.text;

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
    const r = await fetch("/api/v1/stats?" + q, { headers: { authorization: "Bearer " + f.token.value } });
    const s = await r.json();
    if (!r.ok) { status.textContent = "error: " + s.error; return; }
    status.textContent = "";
    const cards = document.getElementById("cards");
    cards.replaceChildren(...[
      ["Visitors", s.visitors], ["Sessions", s.sessions], ["Page views", s.pageviews],
      ["Avg. session", s.avg_session_secs.toFixed(1) + " s"], ["Bounce rate", (s.bounce_rate * 100).toFixed(0) + "%"],
      ["DAU", s.active.dau], ["WAU", s.active.wau], ["MAU", s.active.mau],
      // Batches trackers could not send at first (then delivered) or dropped for good.
      ["Undelivered", `${s.undelivered.failed} late · ${s.undelivered.dropped} lost`],
    ].map(([label, value]) => {
      const c = text("div", "", "card");
      c.dataset.metric = label;
      c.append(text("b", String(value)), text("span", label));
      return c;
    }));
    drawSeries(s.series);
    const panels = document.getElementById("panels");
    panels.replaceChildren(...[
      ["Top pages", s.pages], ["Entry pages", s.entries], ["Exit pages", s.exits], ["Referrers", s.referrers], ["Devices", s.devices], ["Browsers", s.browsers],
      ["Operating systems", s.os], ["Countries", s.countries], ["Campaigns", s.campaigns],
    ].map(([title, rows]) => {
      const p = text("section", "", "card");
      p.append(text("h3", title));
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
          name.append(a, " ", live);
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

  // The series chart: uPlot (vendored in www/vendor by scripts/vendor-www.sh), 50 KB, canvas.
  let chart = null;
  function drawSeries(series) {
    const box = document.getElementById("series");
    chart?.destroy();
    chart = null;
    box.replaceChildren();
    if (!series.length) return;
    // "YYYY-MM-DD" or "YYYY-MM-DD HH:00:00", UTC.
    const t = series.map((d) => Date.parse(d.day.length === 10 ? d.day + "T00:00:00Z" : d.day.replace(" ", "T") + "Z") / 1000);
    const opts = {
      width: Math.max(300, box.clientWidth),
      height: 180,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      series: [
        {},
        { label: "Page views", stroke: "#2f6fed", width: 2, points: { show: true } },
        { label: "Visitors", stroke: "#16a085", width: 2, points: { show: true } },
      ],
      // A single day (or hour) would otherwise spread the axis over years.
      scales: { x: { time: true, range: (u, min, max) => (min === max ? [min - 43200, max + 43200] : [min, max]) } },
      axes: [{}, { size: 50 }],
    };
    chart = new uPlot(opts, [t, series.map((d) => d.pageviews), series.map((d) => d.visitors)], box);
    window.pl.chart = chart;
  }

  const auth = () => ({ authorization: "Bearer " + form.elements.token.value });

  async function funnel(ev) {
    ev?.preventDefault();
    const q = new URLSearchParams({ site: form.elements.site.value, steps: document.querySelector("#funnel-form [name=steps]").value });
    if (form.elements.from.value) q.set("from", form.elements.from.value);
    if (form.elements.to.value) q.set("to", form.elements.to.value);
    const r = await fetch("/api/v1/funnel?" + q, { headers: auth() });
    const body = await r.json();
    const table = document.getElementById("funnel");
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
    feed.prepend(text("li", `${new Date(e.ts).toLocaleTimeString()} ${e.kind} ${e.path} ${e.selector || ""}`));
    while (feed.children.length > 20) feed.lastChild.remove();
  }
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
    ws.onmessage = (m) => {
      const e = JSON.parse(m.data);
      if (e.lagged === undefined) arrived(e);
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
        const frame = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = frame.split("\n").find((l) => l.startsWith("data: "));
        if (data) arrived(JSON.parse(data.slice(6)));
      }
    }
  }

  async function anomalies() {
    const q = new URLSearchParams({ site: form.elements.site.value });
    if (form.elements.from.value) q.set("from", form.elements.from.value);
    if (form.elements.to.value) q.set("to", form.elements.to.value);
    const r = await fetch("/api/v1/anomalies?" + q, { headers: auth() });
    const a = await r.json();
    const table = document.getElementById("anomalies");
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
  form.addEventListener("submit", () => { funnel(); live(); });
  form.addEventListener("submit", show);
  if (form.elements.site.value && form.elements.token.value) { show(); funnel(); anomalies(); live(); }
})();
