/**
 * Opens the gateway's Swagger UI in real headless Chromium (Debian's package, driven by
 * playwright-core) with every request that leaves loopback refused and recorded; waits
 * until the operations are rendered; saves a screenshot. Run by
 * tests/e2e/test_docs_browser.py, which asserts on the JSON this prints.
 *
 *   DOCS_URL=http://127.0.0.1:8000/docs SCREENSHOT=docs/swagger-ui.png node tests/docs-browser.mjs
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { chromium } from "playwright-core";

const docsUrl = process.env.DOCS_URL;
if (!docsUrl) throw new Error("DOCS_URL is not set");
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);
const isLocal = (url) => {
  const { protocol, hostname } = new URL(url);
  return protocol === "data:" || protocol === "blob:" || LOOPBACK.has(hostname);
};

const profile = mkdtempSync(join(tmpdir(), "docs-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 900 },
  // As the machine's notes say: no GPU, and none of Chromium's own calls home.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const requests = [];
const refused = [];
const problems = [];
try {
  // Every request of every page and worker goes through here: loopback only.
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (isLocal(url)) return route.continue();
    refused.push(url);
    return route.abort("blockedbyclient");
  });
  context.on("request", (request) => requests.push(request.url()));
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(String(error)));
  const response = await page.goto(docsUrl, { waitUntil: "load" });
  // Rendered: the sections of the tags, each with its operations.
  await page.waitForSelector(".opblock-tag-section .opblock", { timeout: 30_000 });
  await page.waitForLoadState("networkidle");
  const tags = await page.$$eval(".opblock-tag", (els) => els.map((e) => e.dataset.tag));
  const operationIds = await page.$$eval(".opblock-summary-operation-id", (els) =>
    els.map((e) => e.textContent.trim()),
  );
  const title = await page.$eval(".info .title", (e) => e.textContent.trim());
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  const csp = response.headers()["content-security-policy"] ?? "";
  process.stdout.write(
    `${JSON.stringify({ status: response.status(), csp, title, tags, operationIds, requests, refused, problems })}\n`,
  );
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
