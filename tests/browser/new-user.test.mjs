// Issue 36's new user, in Chromium, as they would go, with real host names (Chromium maps them
// to 127.0.0.1): the dashboards on `pl.example.net`, the user's website on
// `shop.example.com`, and an ordinary browser's User-Agent throughout.
//   1. The first admin: the dashboard link opens the first-start form, which makes the account;
//      signed out, they sign in again on the sign-in form.
//   2. In Settings they add a site and copy its snippet (the clipboard holds what the page shows).
//   3. A page of their website with that snippet, visited and clicked, is on the dashboard.
//   4. They invite a viewer; the link, opened in a second browser context (no cookie of the
//      admin's), makes the viewer's account and signs it in.
//   5. The viewer sees that site's heatmap, has no Settings (the page refuses too), reads no
//      other site, and the API refuses their writes (403) while the admin's succeed.
//   6. (Beyond the five.) Shared links made in Settings open read-only for someone
//      without an account: the dashboard, and a page's heatmap behind a password; revoked, no more.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { eventually, freePort, hostRules, launchBrowser, startClickHouse, startCollector } from "../lib/stack.mjs";
import { CHAPTER, NEXT, USER_AGENT, forward, startSite, stored, visit } from "../lib/site.mjs";

const HOSTS = ["pl.example.net", "shop.example.com"];
const db = "e2e_new_user";
const ADMIN = { email: "owner@shop.example.com", password: "the owner's password" };
const VIEWER = { email: "marketing@shop.example.com", password: "the viewer's password" };
let ch, collector, browser, site, dash, shop;

before(async () => {
  ch = await startClickHouse("newuser");
  const port = await freePort();
  const sitePort = await freePort();
  dash = `http://pl.example.net:${port}`;
  shop = `http://shop.example.com:${sitePort}`;
  // One site in the file already, which the viewer is never given.
  collector = await startCollector({
    clickhouseUrl: ch.url, db, port,
    env: { PATHLIGHT_SITES: `[{id = "other", origins = ["http://other.example.org"], api_token = "other-token"}]` },
  });
  // The clipboard is for secure origins: the dashboards' counts as one here, as HTTPS would.
  browser = await launchBrowser([hostRules(HOSTS), `--user-agent=${USER_AGENT}`, `--unsafely-treat-insecure-origin-as-secure=${dash}`]);
});
after(async () => {
  await browser?.close();
  await site?.stop();
  await collector?.stop();
});

/** A context of its own (cookies, storage), the clipboard granted to the dashboards. */
async function person() {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: dash });
  const page = await ctx.newPage();
  const errors = [];
  // The dashboards' own scripts' errors (the website framed in the viewer has its own).
  page.on("pageerror", (e) => (e.stack || "").includes(`${dash}/`) && errors.push(`${page.url()}: ${e.stack}`));
  return { ctx, page, errors };
}

/** Presses `button` and returns what the clipboard then holds. */
async function copy(page, button) {
  await page.evaluate(() => navigator.clipboard.writeText(""));
  await page.click(button);
  return eventually(() => page.evaluate(() => navigator.clipboard.readText()), 5_000, `the clipboard after ${button}`);
}

/** `method` on `path` from `page` (its cookie and Origin, as the page's own script would). */
const call = (page, method, path, body) => page.evaluate(async ([method, path, body]) => {
  const r = await fetch(path, { method, headers: { "content-type": "application/json" }, body: body && JSON.stringify(body) });
  return { status: r.status, body: await r.text() };
}, [method, path, body]);

let admin, snippet, invitation;

test("1. the first admin makes their account on the first start and signs in", async () => {
  admin = await person();
  const { page } = admin;
  await page.goto(`${dash}/`);
  await page.waitForURL(`${dash}/setup.html?next=%2F`);
  await page.fill("[name=email]", ADMIN.email);
  await page.fill("[name=password]", ADMIN.password);
  await page.fill("[name=again]", ADMIN.password);
  await Promise.all([page.waitForURL(`${dash}/`), page.click("#setup button")]);
  await page.waitForSelector("body[data-reader=account]");
  // Signed out, the dashboard sends them to the sign-in form, which brings them back.
  await Promise.all([page.waitForURL(`${dash}/signin.html`), page.click("#sign-out")]);
  await page.goto(`${dash}/heatmap.html`);
  await page.waitForURL(`${dash}/signin.html?next=%2Fheatmap.html`);
  await page.waitForSelector("body[data-ready]");
  assert.equal(await page.isVisible("#no-account"), false, "the first-start form is closed now");
  await page.fill("[name=email]", ADMIN.email);
  await page.fill("#signin [name=password]", ADMIN.password);
  await Promise.all([page.waitForURL(`${dash}/heatmap.html`), page.click("#signin button")]);
  await page.waitForSelector("body[data-reader=account]");
  assert.equal(await page.textContent("#account-link"), ADMIN.email);
  assert.equal(await page.isVisible("[name=token]"), false, "no token field for an account");
  assert.equal(await page.textContent("#settings-link"), "Settings");
});

test("2. they add a site in Settings and copy its snippet", async () => {
  const { page } = admin;
  await Promise.all([page.waitForURL(`${dash}/settings.html`), page.click("#settings-link")]);
  await page.waitForSelector("body[data-ready]");
  const f = "#add-site ";
  await page.fill(f + "[name=id]", "shop");
  await page.fill(f + "[name=name]", "The shop");
  await page.fill(f + "[name=origins]", shop);
  await page.fill(f + "[name=timezone]", "Europe/Berlin");
  await page.fill(f + "[name=base_url]", shop);
  await page.click(f + "button");
  await page.waitForFunction(() => document.getElementById("snippet").textContent.includes('data-site="shop"'), null, { timeout: 10_000 });
  assert.match(await page.textContent("#add-site-status"), /Added shop/);
  const shown = await page.textContent("#snippet");
  snippet = await copy(page, "#copy-snippet");
  assert.equal(snippet, shown, "the clipboard holds the snippet shown");
  assert.match(await page.textContent("#snippet-said"), /Copied/);
  assert.match(snippet, /^<script async src="[^"]+p\.js" data-site="shop"><\/script>$/);
  // Both kinds of site in one list; the file's is marked as such.
  const rows = await page.$$eval("#site-list tr", (trs) => trs.slice(1).map((tr) => [...tr.cells].map((c) => c.textContent)));
  assert.deepEqual(rows.map((r) => [r[0], r[3]]).sort(), [["other", "configuration file"], ["shop", "settings"]]);
});

test("3. a page of the website with that snippet is visited, and the visit is on the dashboard", async () => {
  // The site serves the snippet as copied; a first-party path (`/_pl/p.js`) is forwarded to the
  // collector as the README's proxy block does.
  const src = snippet.match(/src="([^"]+)"/)[1];
  const prefix = src.startsWith("/") ? src.slice(0, src.lastIndexOf("/") + 1) : null;
  site = await startSite({
    port: Number(new URL(shop).port),
    tag: snippet,
    proxy: prefix ? forward(prefix, collector.base) : () => false,
  });
  const visitor = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const { total } = await visit(await visitor.newPage(), shop);
  await visitor.close();
  await stored(ch, db, total);
  const { page } = admin;
  const views = await eventually(async () => {
    await page.goto(`${dash}/?site=shop`);
    await page.waitForSelector("body[data-ready]");
    const n = Number((await page.textContent('[data-metric="Page views"] b')).replace(/\D/g, ""));
    return n >= 2 && n;
  }, 20_000, "the visit's page views on the dashboard");
  assert.ok(views >= 2, `the chapter and the next one: ${views}`);
  const pages = await page.$$eval("#panels section", (ss) => ss.find((s) => s.querySelector("h3").textContent.startsWith("Top pages")).querySelector("table").textContent);
  assert.ok(pages.includes(CHAPTER) && pages.includes(NEXT), pages);
});

let viewer;

test("4. they invite a viewer, who makes an account from the link in a second browser context", async () => {
  const { page } = admin;
  await page.goto(`${dash}/settings.html?site=shop`);
  await page.waitForSelector("body[data-ready]");
  await page.selectOption("#invite [name=role]", "viewer");
  await page.click("#invite button");
  await page.waitForFunction(() => document.getElementById("invite-url").textContent.includes("/invite.html#t="));
  invitation = await copy(page, "#copy-invite");
  assert.ok(invitation.startsWith(`${dash}/invite.html#t=`), invitation);
  assert.match(await page.textContent("#invitations"), /viewer/, "pending");

  viewer = await person();
  const v = viewer.page;
  await v.goto(invitation);
  await v.waitForSelector("body[data-ready]");
  assert.equal(new URL(v.url()).hash, "", "the token left the address bar");
  await v.fill("#join [name=email]", VIEWER.email);
  await v.fill("#join [name=password]", VIEWER.password);
  await v.fill("#join [name=again]", VIEWER.password);
  await Promise.all([v.waitForURL(`${dash}/?site=shop`), v.click("#join button")]);
  await v.waitForSelector("body[data-ready]");
  assert.equal(await v.textContent("#account-link"), VIEWER.email);
  // Used once: the same link again is refused.
  const again = await browser.newContext();
  const p = await again.newPage();
  await p.goto(invitation);
  await p.waitForSelector("body[data-ready]");
  await p.fill("#join [name=email]", "someone.else@example.com");
  await p.fill("#join [name=password]", "another password");
  await p.fill("#join [name=again]", "another password");
  await p.click("#join button");
  await p.waitForFunction(() => /unknown, used or expired/.test(document.getElementById("status").textContent));
  await again.close();
  // The admin sees the new member.
  await page.reload();
  await page.waitForSelector("body[data-ready]");
  await page.waitForFunction((email) => document.getElementById("members").textContent.includes(email), VIEWER.email);
});

test("5. the viewer sees the site's heatmap, has no settings, reads no other site, and cannot write", async () => {
  const v = viewer.page;
  await v.goto(`${dash}/heatmap.html?` + new URLSearchParams({ site: "shop", path: CHAPTER }));
  await v.waitForSelector("body[data-ready='1']", { timeout: 20_000 });
  const status = await v.textContent("#status");
  const clicks = Number(status.match(/^(\d+) clicks/)?.[1]);
  assert.ok(clicks >= 4, `the chapter's clicks drawn: ${status}`);
  assert.ok(await v.$$eval("#overlay .badge", (b) => b.length) > 0, "badges on the page");

  // No Settings in the navigation, and the page itself refuses.
  assert.equal(await v.$("#settings-link"), null);
  await v.goto(`${dash}/settings.html`);
  await v.waitForSelector("body[data-ready]");
  assert.equal(await v.getAttribute("body", "data-denied"), "1");
  assert.equal(await v.isVisible("#manage"), false);
  assert.match(await v.textContent("#status"), /for the admins of a site/);

  // Another site: neither offered nor readable.
  await v.goto(`${dash}/?site=other`);
  await v.waitForFunction(() => /^error/.test(document.getElementById("status").textContent));
  assert.deepEqual(await v.$$eval("#my-sites option", (os) => os.map((o) => o.value)), ["shop"]);
  const sites = JSON.parse((await call(v, "GET", "/api/v1/sites")).body).sites.map((s) => [s.id, s.role]);
  assert.deepEqual(sites, [["shop", "viewer"]]);
  for (const p of ["/api/v1/stats?site=other", "/api/v1/heatmap?site=other&path=/"]) {
    assert.ok([401, 403].includes((await call(v, "GET", p)).status), p);
  }

  // Writes: refused to the viewer, each with 403 forbidden; the admin's first one goes through.
  const writes = [
    ["POST", "/api/v1/sites", { id: "mine", name: "Mine", origins: ["https://mine.example"], timezone: "UTC" }],
    ["PATCH", "/api/v1/sites/shop", { name: "Taken over" }],
    ["POST", "/api/v1/sites/shop/keys", { name: "mine", kind: "read" }],
    ["POST", "/api/v1/sites/shop/invitations", { role: "admin" }],
    ["POST", "/api/v1/sites/shop/shares", { kind: "dashboard" }],
    ["DELETE", "/api/v1/sites/shop"],
  ];
  for (const [method, path, body] of writes) {
    const r = await call(v, method, path, body);
    assert.equal(r.status, 403, `${method} ${path}: ${r.body}`);
    assert.equal(JSON.parse(r.body).reason, "forbidden", r.body);
  }
  const made = await call(admin.page, "POST", "/api/v1/sites/shop/keys", { name: "reporting", kind: "read" });
  assert.equal(made.status, 201, made.body);
  assert.deepEqual(viewer.errors, [], "no script error on any dashboard page");
  await viewer.ctx.close();
});

test("6. shared links: the dashboard, and the chapter's heatmap behind a password, open read-only without an account until revoked", async () => {
  const { page } = admin;
  await page.goto(`${dash}/settings.html?site=shop`);
  await page.waitForSelector("body[data-ready]");
  /** Makes a shared link in Settings and returns it as copied. */
  async function share(kind, path = "", password = "") {
    await page.selectOption("#share [name=kind]", kind);
    await page.fill("#share [name=path]", path);
    await page.fill("#share [name=password]", password);
    await page.evaluate(() => { document.getElementById("share-url").textContent = ""; });
    await page.click("#share button");
    await page.waitForFunction(() => document.getElementById("share-url").textContent.includes("/share.html#s="));
    return copy(page, "#copy-share");
  }
  const dashboardLink = await share("dashboard");
  const heatmapLink = await share("heatmap", CHAPTER, "a share password");
  assert.equal(await page.$$eval("#shares tr", (trs) => trs.length - 1), 2, "both listed");

  const colleague = await person();
  const c = colleague.page;
  await c.goto(dashboardLink);
  await c.waitForURL(`${dash}/?site=shop`);
  await c.waitForSelector("body[data-ready]");
  assert.ok(Number((await c.textContent('[data-metric="Page views"] b')).replace(/\D/g, "")) >= 2);
  assert.match(await c.textContent("header"), /Shared view of shop, read-only/);
  assert.deepEqual(await c.$$eval("header a.nav", (as) => as.filter((a) => !a.hidden).map((a) => a.textContent)), [], "no other page offered");
  assert.equal(await c.isEditable("[name=site]"), false);

  await c.goto(heatmapLink);
  await c.waitForSelector("#unlock:not([hidden])");
  await c.fill("#unlock [name=password]", "not the password");
  await c.click("#unlock button");
  await c.waitForFunction(() => document.getElementById("status").textContent === "Wrong password.");
  await c.fill("#unlock [name=password]", "a share password");
  await Promise.all([c.waitForURL(/\/heatmap\.html\?/), c.click("#unlock button")]);
  await c.waitForSelector("body[data-ready='1']", { timeout: 20_000 });
  assert.match(await c.textContent("#status"), /^\d+ clicks/);
  assert.equal(await c.isVisible("#live"), false, "no Open on site");

  // Revoked: the link is refused, and so are the reads of the token it gave.
  await page.reload();
  await page.waitForSelector("body[data-ready]");
  await page.click('#shares button[aria-label="Revoke the shared dashboard link"]');
  await page.waitForFunction(() => /revoked/.test(document.getElementById("share-status").textContent));
  await c.goto(dashboardLink);
  await c.waitForFunction(() => /unknown, revoked or expired/.test(document.getElementById("status").textContent));
  assert.deepEqual([...admin.errors, ...colleague.errors], [], "no script error on any dashboard page");
  await colleague.ctx.close();
  await admin.ctx.close();
});
