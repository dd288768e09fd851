import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium, type Browser, type Page } from "playwright-core";

/**
 * Debian's Chromium driven by playwright-core, for the server-rendered pages. Tests using it are skipped without
 * /usr/bin/chromium unless MESHAGENT_TEST_REQUIRE_BROWSER=1 (CI installs it).
 */
export const CHROMIUM = "/usr/bin/chromium";
export const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM && process.env.MESHAGENT_TEST_REQUIRE_BROWSER === "1") throw new Error(`MESHAGENT_TEST_REQUIRE_BROWSER=1 but ${CHROMIUM} is missing`);

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
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
}

const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/** axe-core's WCAG 2.x A/AA and best-practice violations of the page (it needs JavaScript on and the CSP bypassed). */
export async function axe(page: Page) {
  await page.addScriptTag({ content: AXE });
  const r = (await page.evaluate(() =>
    (window as any).axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] } }),
  )) as { violations: { id: string; help: string; nodes: { html: string }[] }[] };
  return r.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.html).join(" | ")})`);
}
