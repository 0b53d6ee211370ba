// `pathlight gen` clicks the demo pages where their elements are: demo-site/layout.json. This
// re-measures the pages in Chromium and fails when the file no longer matches them (run
// `node scripts/demo-layout.mjs` after changing the demo site, then regenerate the sample:
// README, "Running the collector").
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { root } from "../lib/stack.mjs";
import { measure, PAGES, SCREENS } from "../../scripts/demo-layout.mjs";

test("demo-site/layout.json matches the demo pages as Chromium lays them out", async () => {
  const committed = JSON.parse(readFileSync(join(root, "demo-site", "layout.json"), "utf8"));
  const now = await measure();
  assert.deepEqual(Object.keys(committed.pages), PAGES);
  for (const page of PAGES) {
    assert.deepEqual(committed.pages[page].map((s) => s.viewport), SCREENS, page);
    for (const [i, screen] of now.pages[page].entries()) {
      const old = committed.pages[page][i];
      const where = `${page} at ${screen.viewport[0]} px`;
      assert.deepEqual(old.elements.map((e) => e.selector), screen.elements.map((e) => e.selector), where);
      // Fonts may differ by a pixel or two between machines; a moved element differs by more.
      const near = (a, b) => a.every((v, k) => Math.abs(v - b[k]) <= 4);
      assert.ok(near(old.document, screen.document), `${where}: document ${old.document} now ${screen.document}`);
      for (const [k, e] of screen.elements.entries()) {
        assert.ok(near(old.elements[k].box, e.box), `${where}: ${e.selector} was at ${old.elements[k].box}, now ${e.box}`);
      }
    }
  }
});
