import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { startServer, type TestServer } from "./helpers/server.js";
import { axe, HAVE_CHROMIUM, launchChromium } from "./helpers/browser.js";
import { until } from "./helpers/room-client.js";
import { invitationLink, smtpRelay } from "./helpers/smtp-relay.js";
import { createServer, type Server } from "node:http";
import { generate as totpCode } from "otplib";
import { CLI_CLIENT_ID, pkce } from "./helpers/oauth.js";

/**
 * The account pages in a real browser: Debian's Chromium driven by playwright-core. The flow runs with JavaScript
 * off (the pages must not need it); every page state is checked with axe-core (WCAG 2.x A/AA rules) with JavaScript
 * on. Skipped without /usr/bin/chromium unless MESHAGENT_TEST_REQUIRE_BROWSER=1 (CI installs it).
 */
describe.runIf(HAVE_CHROMIUM)("account pages in headless Chromium (JavaScript off; axe-core checks)", () => {
  let s: TestServer;
  let relay: Awaited<ReturnType<typeof smtpRelay>>;
  let browser: Browser;
  // An OAuth client's redirect target on loopback: it answers a small page with the code it got.
  let app: Server;
  let appUrl = "";
  beforeAll(async () => {
    app = createServer((req, res) => {
      const u = new URL(req.url ?? "/", "http://x");
      res.writeHead(200, { "content-type": "text/html" });
      res.end(
        `<!doctype html><html lang="en"><title>App</title><main><h1>Back in the app</h1><p id="result">${u.searchParams.get("code") ? "code" : u.searchParams.get("error")}</p></main></html>`,
      );
    });
    await new Promise<void>((r) => app.listen(0, "127.0.0.1", r));
    appUrl = `http://127.0.0.1:${(app.address() as { port: number }).port}/cb`;
    relay = await smtpRelay();
    s = await startServer({ env: { MESHAGENT_SMTP_RELAY_URL: `smtp://127.0.0.1:${relay.port}` } });
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await s?.close();
    app?.close();
    await relay?.close();
  });

  const invite = async (email: string) => {
    await s.http("POST", `/accounts/projects/${s.admin.projectId}/users`, { json: { email } });
    await until(() => relay.mails.some((m) => m.to === email), 10_000, "the invitation mail");
    return invitationLink(relay.mails.find((m) => m.to === email)!.text);
  };

  /** The invitation flow in one page: the form, a refused password (names kept), the account, the used link. */
  async function flow(page: Page, email: string, link: string, each: (state: string) => Promise<void>) {
    await page.goto(link);
    expect(await page.title()).toMatch(/Accept your invitation/);
    expect(await page.textContent("main")).toContain(email);
    await each("invitation page");
    await page.getByLabel("First name (optional)").fill("Ada");
    await page.getByLabel("Password", { exact: true }).fill("aaaaaaaaaaaa");
    await page.getByLabel("Password again").fill("aaaaaaaaaaaa");
    await page.getByRole("button", { name: "Create my account" }).click();
    await page.getByRole("alert").waitFor();
    expect(await page.getByRole("alert").textContent()).toMatch(/at least 5 different/);
    expect(await page.getByLabel("First name (optional)").inputValue()).toBe("Ada");
    await each("refused password");
    await page.getByLabel("Password", { exact: true }).fill("a much better passphrase");
    await page.getByLabel("Password again").fill("a much better passphrase");
    await page.getByRole("button", { name: "Create my account" }).click();
    await page.locator("h1", { hasText: "Your account is ready" }).waitFor();
    await each("account ready");
    expect(await s.ctx.users.byEmail(email)).toMatchObject({ invited: 0, first_name: "Ada" });
    await page.goto(link);
    expect(await page.locator("h1").textContent()).toBe("This link cannot be used any more");
    await each("used link");
  }

  /** Sign in (a wrong password first), the account page, the password page, sign out. */
  async function account(page: Page, email: string, each: (state: string) => Promise<void>) {
    await page.goto(`${s.url}/accounts`);
    await page.locator("h1", { hasText: "Sign in" }).waitFor();
    await each("sign-in page");
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill("not my password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").waitFor();
    expect(await page.getByRole("alert").textContent()).toMatch(/wrong email or password/);
    await each("wrong password");
    await page.getByLabel("Password").fill("a much better passphrase");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("h1", { hasText: "Your account" }).waitFor();
    expect(await page.textContent("main")).toContain(email);
    await each("account page");
    await page.getByRole("link", { name: "Change your password" }).click();
    await page.locator("h1", { hasText: "Change your password" }).waitFor();
    await each("password page");
    await page.getByRole("link", { name: "Back to your account" }).click();
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.locator("h1", { hasText: "Sign in" }).waitFor();
  }

  /** Forgot password: the request form, the mail, the new-password form (a mismatch first), signed in with it. */
  async function reset(page: Page, email: string, each: (state: string) => Promise<void>) {
    await page.goto(`${s.url}/accounts/sign-in`);
    await page.getByRole("link", { name: "Forgot your password?" }).click();
    await page.locator("h1", { hasText: "Reset your password" }).waitFor();
    await each("reset request page");
    await page.getByLabel("Email").fill(email);
    await page.getByRole("button", { name: "Send the link" }).click();
    await page.locator("h1", { hasText: "Check your mail" }).waitFor();
    await each("reset requested");
    await until(() => relay.mails.some((m) => m.to === email && /reset/i.test(m.subject)), 10_000, "the reset mail");
    const mail = relay.mails.find((m) => m.to === email && /reset/i.test(m.subject))!;
    await page.goto(/https?:\/\/\S+\/accounts\/password-reset\/choose\?token=[\w%-]+/.exec(mail.text)![0]);
    await each("choose a new password");
    await page.getByLabel("New password", { exact: true }).fill("yet another phrase");
    await page.getByLabel("New password again").fill("yet another phrasE");
    await page.getByRole("button", { name: "Set the new password" }).click();
    await page.getByRole("alert").waitFor();
    await each("passwords differ");
    await page.getByLabel("New password", { exact: true }).fill("yet another phrase");
    await page.getByLabel("New password again").fill("yet another phrase");
    await page.getByRole("button", { name: "Set the new password" }).click();
    await page.locator("h1", { hasText: "Password changed" }).waitFor();
    await each("password reset");
    await page.getByRole("link", { name: "Sign in" }).click();
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill("yet another phrase");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("h1", { hasText: "Your account" }).waitFor();
  }

  /** Sign-up (open policy), two-step verification on, signed out, signed in again with the code. */
  async function signUp(page: Page, email: string, each: (state: string) => Promise<void>) {
    await s.http("PUT", "/admin/settings", { token: s.admin.userToken, json: { signup_policy: "open" } });
    await page.context().clearCookies();
    await page.goto(`${s.url}/accounts/sign-in`);
    await page.getByRole("link", { name: "Create one" }).click();
    await page.locator("h1", { hasText: "Create your account" }).waitFor();
    await each("sign-up page");
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password", { exact: true }).fill("aaaaaaaaaaaa");
    await page.getByLabel("Password again").fill("aaaaaaaaaaaa");
    await page.getByRole("button", { name: "Create my account" }).click();
    await page.getByRole("alert").waitFor();
    await each("sign-up refused");
    await page.getByLabel("Password", { exact: true }).fill("a sign-up passphrase");
    await page.getByLabel("Password again").fill("a sign-up passphrase");
    await page.getByRole("button", { name: "Create my account" }).click();
    await page.locator("h1", { hasText: "Your account" }).waitFor();
    await page.getByRole("link", { name: "Two-step verification" }).click();
    await page.locator("h1", { hasText: "Two-step verification" }).waitFor();
    await each("two-step setup");
    const secret = (await page.locator("#totp-secret").textContent())!.trim();
    await page.getByLabel("Code from the app").fill("000000");
    await page.getByRole("button", { name: "Turn on two-step verification" }).click();
    await page.getByRole("alert").waitFor();
    await each("two-step wrong code");
    await page.getByLabel("Code from the app").fill(await totpCode({ secret }));
    await page.getByRole("button", { name: "Turn on two-step verification" }).click();
    await page.locator("h1", { hasText: "Two-step verification is on" }).waitFor();
    await page.getByRole("link", { name: "Back to your account" }).click();
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill("a sign-up passphrase");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByLabel("Authentication code").waitFor();
    await each("code step");
    // the next step's code (the current one was spent turning it on; one step of drift is allowed)
    await page.getByLabel("Authentication code").fill(await totpCode({ secret, epoch: Math.floor(Date.now() / 1000) + 30 }));
    await page.getByRole("button", { name: "Verify" }).click();
    await page.locator("h1", { hasText: "Your account" }).waitFor();
    await s.http("PUT", "/admin/settings", { token: s.admin.userToken, json: { signup_policy: "invite" } });
  }

  /** An application that is not official: sign in through /oauth/authorize, the consent page, back to the app with a code. */
  async function consent(page: Page, email: string, each: (state: string) => Promise<void>) {
    const c = await s.http("POST", `/accounts/projects/${s.admin.projectId}/oauth/clients`, {
      json: {
        grant_types: ["authorization_code"],
        response_types: ["code"],
        redirect_uris: [appUrl],
        scope: "profile project/*",
        metadata: { client_name: "Team board" },
      },
    });
    const q = new URLSearchParams({
      response_type: "code",
      client_id: c.json.client_id,
      redirect_uri: appUrl,
      scope: "profile project/*",
      state: "st",
      code_challenge: pkce().challenge,
      code_challenge_method: "S256",
    });
    await page.goto(`${s.url}/oauth/authorize?${q}`);
    const signInFirst = await page.locator("h1", { hasText: "Sign in" }).count();
    if (signInFirst) {
      await each("oauth sign-in");
      await page.getByLabel("Email").fill(email);
      await page.getByLabel("Password").fill("yet another phrase");
      await page.getByRole("button", { name: "Sign in" }).click();
    }
    await page.locator("h1", { hasText: "Allow Team board?" }).waitFor();
    await each("consent page");
    await page.getByRole("button", { name: "Allow" }).click();
    await page.locator("h1", { hasText: "Back in the app" }).waitFor();
    expect(await page.locator("#result").textContent()).toBe("code");
  }

  /** The device flow's pages: the code, the confirmation, done (signed in already in this browser). */
  async function device(page: Page, each: (state: string) => Promise<void>) {
    const d = (await fetch(`${s.url}/oauth/device/auth`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ client_id: CLI_CLIENT_ID, scope: "profile" }).toString(),
    }).then((r) => r.json())) as { user_code: string; verification_uri: string };
    await page.goto(d.verification_uri);
    await page.getByLabel("Code").waitFor();
    await each("device code page");
    await page.getByLabel("Code").fill("WRONG-CODE");
    await page.getByRole("button", { name: "Continue" }).click();
    await page.getByRole("alert").waitFor();
    await each("device code wrong");
    await page.getByLabel("Code").fill(d.user_code);
    await page.getByRole("button", { name: "Continue" }).click();
    await page.locator("h1", { hasText: "Confirm the device" }).waitFor();
    await each("device confirm page");
    await page.getByRole("button", { name: "Continue" }).click();
    await page.locator("h1", { hasText: "Device signed in" }).waitFor();
    await each("device signed in");
  }

  it("the invitation and account flows work with JavaScript off", async () => {
    const email = `nojs-${Date.now()}@example.com`;
    const ctx = await browser.newContext({ javaScriptEnabled: false });
    try {
      const page = await ctx.newPage();
      await flow(page, email, await invite(email), async () => {});
      await account(page, email, async () => {});
      await reset(page, email, async () => {});
      await consent(page, email, async () => {});
      await device(page, async () => {});
      await signUp(page, `signup-nojs-${Date.now()}@example.com`, async () => {});
    } finally {
      await ctx.close();
    }
  }, 60_000);

  it("every state of the invitation and account pages passes axe-core's WCAG 2.1 A/AA and best-practice rules", async () => {
    const email = `axe-${Date.now()}@example.com`;
    // The pages' CSP forbids scripts: the checker is injected past it.
    const ctx = await browser.newContext({ bypassCSP: true });
    const violations: string[] = [];
    try {
      const page = await ctx.newPage();
      const each = async (state: string) => {
        violations.push(...(await axe(page)).map((v) => `${state}: ${v}`));
      };
      await flow(page, email, await invite(email), each);
      await account(page, email, each);
      await reset(page, email, each);
      await consent(page, email, each);
      await device(page, each);
      await signUp(page, `signup-axe-${Date.now()}@example.com`, each);
      // The checker does find problems: an unlabelled field on an untitled page.
      await page.setContent("<html><body><input></body></html>");
      expect((await axe(page)).join("\n")).toMatch(/label/);
    } finally {
      await ctx.close();
    }
    expect(violations).toEqual([]);
  }, 60_000);
});
