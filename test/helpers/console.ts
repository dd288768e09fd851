import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { AxeBuilder } from "@axe-core/playwright";
import type { TestServer } from "./server.js";

export const PASSWORD = "a fine passphrase for the console";
export const SHOTS = join(process.cwd(), "test-results", "console");

/**
 * A browser context signed in to the console as `email` (the OAuth code + PKCE flow through the sign-in page), with
 * every console error and failed request of its pages collected in `problems`.
 */
export async function signedIn(browser: Browser, s: TestServer, email: string, password = PASSWORD, viewport = { width: 1280, height: 900 }) {
  const context: BrowserContext = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems: string[] = [];
  watch(page, problems);
  await page.goto(`${s.url}/console/`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: /sign in/i }).click();
  await page.locator("header.topbar").waitFor({ timeout: 20_000 });
  return { context, page, problems };
}

/** Collects a page's console errors, uncaught exceptions and failed requests (expected API errors aside). */
export function watch(page: Page, problems: string[], allowStatus: (url: string, status: number) => boolean = () => false) {
  page.on("console", (m) => {
    if (m.type() === "error" && !/Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("response", (r) => {
    if (r.status() >= 500 && !allowStatus(r.url(), r.status())) problems.push(`HTTP ${r.status()} ${r.url()}`);
  });
}

/** axe-core (through @axe-core/playwright): the serious and critical WCAG 2.x A/AA violations of the page. */
export async function seriousViolations(page: Page): Promise<string[]> {
  const r = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
  return r.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help}: ${v.nodes.map((n) => n.html).join(" | ")}`);
}

/** Screenshots of the page at 360 px and 1280 px wide, into test-results/console/<name>-<width>.png. */
export async function screenshots(page: Page, name: string) {
  mkdirSync(SHOTS, { recursive: true });
  const before = page.viewportSize() ?? { width: 1280, height: 900 };
  for (const width of [360, 1280]) {
    await page.setViewportSize({ width, height: 900 });
    await page.waitForTimeout(50);
    await page.screenshot({ path: join(SHOTS, `${name}-${width}.png`), fullPage: true });
  }
  await page.setViewportSize(before);
}
