// Stand-in reporter for the demo page: sends page views, clicks and scroll depth to
// /v1/batch in the JSON form of the wire format (see wire/FORMAT.md). The WebAssembly
// tracker (tracker-wasm/) replaces it.
(() => {
  const uuid = () => crypto.randomUUID();
  const session = sessionStorage.getItem("pl-demo-session") || uuid().replace(/-/g, "").slice(0, 16);
  sessionStorage.setItem("pl-demo-session", session);
  const log = document.getElementById("log");
  let queue = [];
  let maxDepth = 0;

  const common = (type) => ({
    id: uuid(),
    timestamp: Date.now(),
    session_id: session,
    url: location.href,
    referrer: document.referrer || undefined,
    title: document.title,
    viewport: { w: innerWidth, h: innerHeight },
    document: { w: document.documentElement.scrollWidth, h: document.documentElement.scrollHeight },
    type,
  });

  const selector = (el) => {
    if (el.id) return "#" + el.id;
    if (el.dataset.track) return `[data-track="${el.dataset.track}"]`;
    const parts = [];
    for (let e = el; e && e.nodeType === 1 && e !== document.body; e = e.parentElement) {
      const same = [...(e.parentElement?.children || [])].filter((c) => c.tagName === e.tagName);
      parts.unshift(e.tagName.toLowerCase() + (same.length > 1 ? `:nth-of-type(${same.indexOf(e) + 1})` : ""));
    }
    return "body > " + parts.join(" > ");
  };

  const flush = () => {
    if (!queue.length) return;
    const batch = { version: 1, site_id: "demo", sent_at: Date.now(), batch_id: uuid(), events: queue };
    queue = [];
    fetch("/v1/batch", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(batch), keepalive: true })
      .then((r) => { log.textContent = `sent ${batch.events.length} event(s): HTTP ${r.status}\n` + log.textContent; })
      .catch((e) => { log.textContent = `send failed: ${e}\n` + log.textContent; });
  };

  queue.push(common("pageview"));
  document.addEventListener("click", (ev) => {
    const el = ev.target.closest("button, a, [data-track]") || ev.target;
    const box = el.getBoundingClientRect();
    const e = common("click");
    Object.assign(e, {
      x: Math.round(ev.pageX), y: Math.round(ev.pageY),
      element_id: el.id || undefined, selector: selector(el), tag: el.tagName.toLowerCase(),
      text: el.tagName === "INPUT" ? undefined : (el.innerText || "").trim().slice(0, 32) || undefined,
      href: el.href || undefined,
      rel_x: box.width ? Math.min(1, Math.max(0, (ev.clientX - box.left) / box.width)) : 0,
      rel_y: box.height ? Math.min(1, Math.max(0, (ev.clientY - box.top) / box.height)) : 0,
      element_box: [Math.round(box.left + scrollX), Math.round(box.top + scrollY), Math.round(box.width), Math.round(box.height)],
    });
    queue.push(e);
    if (queue.length >= 10) flush();
  }, { capture: true, passive: true });
  addEventListener("scroll", () => {
    const d = document.documentElement;
    maxDepth = Math.max(maxDepth, Math.min(100, Math.round(((scrollY + innerHeight) / d.scrollHeight) * 100)));
  }, { passive: true });
  setInterval(flush, 5000);
  addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "hidden") return;
    if (maxDepth) queue.push(Object.assign(common("scroll"), { max_depth_pct: maxDepth }));
    flush();
  });
})();
