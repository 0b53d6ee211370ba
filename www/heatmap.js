// Heatmap overlay viewer: loads the page in an iframe at the chosen width and draws, on a
// canvas over it, where visitors clicked. Element-anchored points are placed on the element
// found by selector in the page as rendered now (so they follow reflow); others fall back to
// page coordinates scaled to this width.
//
// Only the site's own pages are framed (`pageUrl`: its origins, a path under its base URL),
// always sandboxed: no popups, forms or navigation of this tab.
(() => {
  const form = document.getElementById("controls");
  const frame = document.getElementById("page");
  const canvas = document.getElementById("heat");
  const overlay = document.getElementById("overlay");
  const stage = document.getElementById("stage");
  const status = document.getElementById("status");
  pl.restore(form, ["site", "token", "path", "width", "device", "from", "to"]);
  // A shared link reads figures only: it mints no overlay token for "Open on site".
  document.getElementById("live").hidden = !!pl.shared;
  document.getElementById("live").addEventListener("click", async () => {
    const f = form.elements;
    status.textContent = (await pl.openOnSite(f.site.value, f.token.value, f.path.value)) || "";
  });
  form.elements.width.addEventListener("change", () => {
    form.querySelector(".custom-width").hidden = form.elements.width.value !== "custom";
  });

  const api = async (endpoint, q) => {
    const r = await fetch(`/api/v1/${endpoint}?${q}`, { headers: pl.headers(form.elements.token.value) });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.status);
    return body;
  };

  function query(path) {
    const f = form.elements;
    const q = new URLSearchParams({ site: f.site.value, path });
    const width = f.width.value === "custom" ? f.custom.value : f.width.value;
    q.set("width", width);
    if (f.device.value) q.set("device", f.device.value);
    if (f.from.value) q.set("from", f.from.value);
    if (f.to.value) q.set("to", f.to.value);
    return { q: q.toString(), width: Number(width) };
  }

  /**
   * The page `path` names on the site: a path (`/…`, no `//`, `\`, spaces or control
   * characters) under its base URL (`base_url`, else its first origin), or a full URL; either
   * on one of its origins. Throws otherwise.
   */
  function pageUrl(path, { origins, base_url: base }) {
    const own = origins.filter((o) => o !== "*").map((o) => new URL(o).origin);
    let url = null;
    if (/^\/(?![/\\])[^\\\s\x00-\x1f\x7f]*$/.test(path)) {
      if (!base) throw new Error("the site lists no origin in [[sites]]: add one to view its pages");
      url = new URL(base + path);
    } else if (/^https?:\/\//i.test(path) && URL.canParse(path)) {
      url = new URL(path);
    }
    if (!url || !own.includes(url.origin)) throw new Error(`not a page of this site: ${path}`);
    return url;
  }

  async function show(ev) {
    ev?.preventDefault();
    const f = form.elements;
    pl.remember(form, ["site", "token", "path", "width", "device", "from", "to"]);
    status.textContent = "loading…";
    try {
      const page = pageUrl(f.path.value, await api("site", new URLSearchParams({ site: f.site.value })));
      const { q, width } = query(page.pathname);
      // Rage and dead clicks come from per-session sequences, the slowest part: asked for
      // beside the click map, which is drawn as soon as it is here.
      const frustrated = f.frustration.checked
        ? api("heatmap", q + "&layers=frustration")
        : Promise.resolve({ rage: [], dead: [] });
      const [heat, elements] = await Promise.all([api("heatmap", q + "&layers=clicks,scroll"), api("elements", q)]);
      await loadPage(page, width);
      if (framing === "refused") {
        status.textContent = "This page cannot be shown here: the site refuses to be framed (X-Frame-Options or CSP frame-ancestors), or the page has no Pathlight tag. \"Open on site\" draws the heatmap on the page itself.";
        document.body.dataset.framing = "refused";
        return;
      }
      await measure(heat, elements);
      draw(heat, elements);
      status.textContent = `${heat.clicks} clicks, ${elements.views} views`;
      const { rage, dead } = await frustrated;
      Object.assign(heat, { rage, dead });
      await measure(heat, elements);
      draw(heat, elements);
      document.body.dataset.ready = "1";
    } catch (e) {
      status.textContent = "error: " + e.message;
    }
  }

  // A page on the site's own origin is framed sandboxed with its scripts under its own origin
  // (so messages can be told apart), and the tracker in it answers layout questions by
  // postMessage: element boxes and document size. Origins are checked both ways: the framed
  // tracker answers the origin it was loaded from, or (a first-party tag, loaded from the
  // site's own origin) this page's origin once the collector has vouched for the viewer token
  // the questions carry; and this page listens only to the site's origin. Scripts with allow-same-origin are safe only there: a page of this very
  // origin could lift its own sandbox and read the token. Such a page is framed without
  // scripts and read directly.
  let framing = "same-origin";
  let siteOrigin = location.origin;
  let layout = { boxes: {}, doc: [0, 0] };
  /** The viewer token for the framed site (see `/api/v1/viewer-token`), sent with every question. */
  let viewerToken = "";

  /** Sends `message` to the framed page and resolves with its answer, or null after `ms`. */
  function ask(message, ms) {
    return new Promise((resolve) => {
      const id = Math.random().toString(36).slice(2);
      const timer = setTimeout(() => done(null), ms);
      function done(v) {
        clearTimeout(timer);
        removeEventListener("message", on);
        resolve(v);
      }
      function on(e) {
        if (e.origin === siteOrigin && e.source === frame.contentWindow && e.data && e.data.id === id) done(e.data);
      }
      addEventListener("message", on);
      frame.contentWindow.postMessage({ ...message, id, token: viewerToken }, siteOrigin);
    });
  }

  async function loadPage(url, width) {
    framing = url.origin !== location.origin ? "framed" : "same-origin";
    siteOrigin = url.origin;
    // Takes effect with the navigation below.
    frame.sandbox.value = framing === "framed" ? "allow-scripts allow-same-origin" : "allow-same-origin";
    url.searchParams.set("pathlight-viewer", "1");
    if (framing === "framed") {
      const q = new URLSearchParams({ site: form.elements.site.value, viewer: location.origin });
      viewerToken = (await api("viewer-token", q)).token;
    }
    await new Promise((resolve) => {
      frame.onload = resolve;
      frame.style.width = width + "px";
      stage.style.width = width + "px";
      frame.src = url.href;
    });
    if (framing === "framed") {
      // A refused frame loads an error page that never answers.
      let answer = null;
      for (let i = 0; i < 20 && !answer; i++) answer = await ask({ pathlight: "layout", selectors: [] }, 250);
      if (!answer) {
        framing = "refused";
        return;
      }
      frame.style.height = answer.doc[1] + "px";
    } else {
      const doc = frame.contentDocument;
      frame.style.height = (doc ? doc.documentElement.scrollHeight : 2000) + "px";
    }
    // Layout settles after the height change (media queries do not depend on it).
    await new Promise((r) => requestAnimationFrame(r));
  }

  /** Framed pages: the boxes of every selector drawn, in the page's coordinates. */
  async function measure(heat, elements) {
    if (framing !== "framed") return;
    const selectors = [...new Set([...heat.anchored, ...elements.elements, ...(heat.rage || []), ...(heat.dead || [])].map((x) => x.selector))];
    layout = (await ask({ pathlight: "layout", selectors }, 5000)) || layout;
  }

  /** The box of `selector` in the frame's coordinates (it is as tall as its document). */
  function boxOf(selector) {
    if (framing === "framed") {
      const b = layout.boxes[selector];
      return b && { left: b[0], top: b[1], width: b[2], height: b[3], bottom: b[1] + b[3] };
    }
    const el = pl.find(frame.contentDocument, selector);
    return el && el.getBoundingClientRect();
  }

  function draw(heat, elements) {
    const doc = framing === "framed" ? layout : frame.contentDocument;
    const w = frame.clientWidth, h = frame.clientHeight;
    canvas.width = w; canvas.height = h;
    overlay.style.width = w + "px"; overlay.style.height = h + "px";
    overlay.replaceChildren();
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, w, h);
    const docW = framing === "framed" ? layout.doc[0] : doc ? doc.documentElement.scrollWidth : w;
    const pts = [];
    const anchoredOk = form.elements.anchored.checked && doc;
    if (anchoredOk) {
      for (const a of heat.anchored) {
        const r = boxOf(a.selector);
        if (!r) continue;
        pts.push([r.left + a.rel_x * r.width, r.top + a.rel_y * r.height, a.n]);
      }
    }
    // Clicks in a fixed or sticky context (a menu bar) are in viewport coordinates: where the
    // element is on screen, which in this frame (as tall as its document) is from its top.
    if (!anchoredOk || pts.length === 0) for (const p of heat.points) pts.push([p.x * (p.fixed ? w : docW), p.y, p.n]);
    const max = Math.max(1, ...pts.map((p) => p[2]));
    ctx.globalCompositeOperation = "lighter";
    for (const [x, y, n] of pts) {
      const g = ctx.createRadialGradient(x, y, 0, x, y, 18);
      const a = 0.35 + 0.65 * (n / max);
      g.addColorStop(0, `rgba(255, 40, 0, ${a})`);
      g.addColorStop(1, "rgba(255, 40, 0, 0)");
      ctx.fillStyle = g;
      ctx.fillRect(x - 18, y - 18, 36, 36);
    }
    if (form.elements.badges.checked && doc) {
      for (const e of elements.elements) {
        const r = boxOf(e.selector);
        if (!r) continue;
        const b = document.createElement("div");
        b.className = "badge";
        b.dataset.selector = e.selector;
        b.style.left = r.left + r.width / 2 + "px";
        b.style.top = r.top + "px";
        b.innerHTML = `<span class="clicks"></span><span class="more"></span>`;
        b.querySelector(".clicks").textContent = `${e.clicks} click${e.clicks === 1 ? "" : "s"}`;
        b.querySelector(".more").textContent = ` · CTR ${(e.ctr * 100).toFixed(1)}% · ${e.clickers} visitors`;
        overlay.append(b);
      }
    }
    if (form.elements.frustration.checked && doc) {
      for (const [list, cls, label] of [[heat.rage, "rage", "rage"], [heat.dead, "dead", "dead clicks"]]) {
        for (const f of list) {
          const r = boxOf(f.selector);
          if (!r) continue;
          const m = document.createElement("div");
          m.className = "frustration " + cls;
          m.dataset.selector = f.selector;
          m.style.left = r.left + r.width / 2 + "px";
          m.style.top = r.bottom + 2 + "px";
          m.textContent = `${f.count} ${label}`;
          overlay.append(m);
        }
      }
    }
    if (form.elements.folds.checked) {
      heat.scroll_reach.forEach((share, i) => {
        if (i === 0 || i === 10 || share === 0) return;
        const line = document.createElement("div");
        line.className = "fold";
        line.style.top = (i / 10) * h + "px";
        line.textContent = `${i * 10}% of the page: reached by ${(share * 100).toFixed(0)}% of sessions`;
        overlay.append(line);
      });
    }
  }

  form.addEventListener("submit", show);
  pl.ready.then(({ me }) => form.elements.site.value && (form.elements.token.value || me) && show());
})();
