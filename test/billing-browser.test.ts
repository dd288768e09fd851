import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:http";
import type { Browser } from "playwright-core";
import { startServer, type TestServer } from "./helpers/server.js";
import { axe, HAVE_CHROMIUM, launchChromium } from "./helpers/browser.js";

/**
 * The local payment provider's checkout page in Debian's Chromium (playwright-core), JavaScript off: sign in, confirm a
 * credits purchase, land on the app's success URL; cancel another. axe-core (WCAG 2.x A/AA) checks each page state.
 */
describe.runIf(HAVE_CHROMIUM)("the local checkout page in headless Chromium", () => {
  let s: TestServer;
  let browser: Browser;
  let app: Server;
  let appUrl = "";
  const password = "a fine passphrase";
  beforeAll(async () => {
    // The app a purchase returns to.
    app = createServer((req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(`<!doctype html><html lang="en"><title>App</title><main><h1 id="where">${new URL(req.url ?? "/", "http://x").pathname}</h1></main></html>`);
    });
    await new Promise<void>((r) => app.listen(0, "127.0.0.1", r));
    appUrl = `http://127.0.0.1:${(app.address() as { port: number }).port}`;
    s = await startServer({ env: { MESHAGENT_BILLING_ENABLED: "false" } });
    await s.ctx.users.setPassword(s.admin.userId, password);
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await s?.close();
    app?.close();
  });

  it("sign in, confirm a purchase (credited once), cancel another; accessible throughout", async () => {
    const checkout = (quantity: number) =>
      s.client().getCreditsCheckoutUrl(s.admin.projectId, { successUrl: `${appUrl}/paid`, cancelUrl: `${appUrl}/cancelled`, quantity });
    const noJs = await browser.newContext({ javaScriptEnabled: false });
    const withJs = await browser.newContext({ bypassCSP: true });
    const check = async (url: string, state: string) => {
      const p = await withJs.newPage();
      await p.context().addCookies(await noJs.cookies());
      await p.goto(url);
      expect(await axe(p), state).toEqual([]);
      await p.close();
    };
    const page = await noJs.newPage();
    const url = await checkout(12);
    await page.goto(url);
    await page.locator("h1", { hasText: "Sign in" }).waitFor();
    await page.getByLabel("Email").fill(s.admin.email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("h1", { hasText: "Buy credits" }).waitFor();
    expect(await page.textContent("main")).toContain("12 credits");
    expect(await page.textContent("main")).toContain("12.00 USD");
    await check(url, "checkout page");
    await page.getByRole("button", { name: "Confirm purchase" }).click();
    await page.waitForURL(`${appUrl}/paid`);
    expect(await s.client().getBalance(s.admin.projectId)).toMatchObject({ balance: 12 });
    // The same checkout again: it is used.
    await page.goto(url);
    expect(await page.locator("h1").textContent()).toBe("Checkout unavailable");
    expect(await page.getByRole("alert").textContent()).toMatch(/already completed/);
    await check(url, "used checkout");

    const other = await checkout(5);
    await page.goto(other);
    await page.getByRole("button", { name: "Cancel" }).click();
    await page.waitForURL(`${appUrl}/cancelled`);
    expect(await s.client().getBalance(s.admin.projectId)).toMatchObject({ balance: 12 });
    const [tx] = await s.client().getRecentTransactions(s.admin.projectId);
    expect(tx).toMatchObject({ amount: 12, referenceType: "local_checkout" });
    await noJs.close();
    await withJs.close();
  }, 60_000);
});
