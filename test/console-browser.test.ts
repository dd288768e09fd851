import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { context as otelContext, trace } from "@opentelemetry/api";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import { startServer, type TestServer } from "./helpers/server.js";
import { HAVE_CHROMIUM, launchChromium } from "./helpers/browser.js";
import { PASSWORD, screenshots, seriousViolations, signedIn } from "./helpers/console.js";
import { invitationLink, smtpRelay } from "./helpers/smtp-relay.js";
import { Receiver } from "./helpers/receiver.js";
import { joinRoom, mintToken, official, roomWsUrl, until, within, type OfficialRoom } from "./helpers/room-client.js";

const { Toolkit, Tool, JsonContent, startHostedToolkit } = official as any;

/** The test agent's tool: adds two numbers. */
class AddTool extends Tool {
  constructor() {
    super({
      name: "add",
      title: "add",
      description: "adds a and b",
      inputSchema: { type: "object", additionalProperties: false, required: ["a", "b"], properties: { a: { type: "number" }, b: { type: "number" } } },
    });
  }
  async execute(args: { a: number; b: number }) {
    return new JsonContent({ json: { sum: args.a + args.b } });
  }
}

/**
 * The web console in Debian's Chromium (playwright-core) against a live server: a person's whole flow (sign in, a
 * project, an API key copied once, a room, a file uploaded and seen in the workspace, a tool of a test agent called
 * from its form, a webhook and its delivery, a member invited by email who accepts in a second browser, a session's
 * spans, the usage), and on every page an axe-core scan (no serious or critical WCAG 2.1 A/AA violation), no console
 * errors, and screenshots at 360 px and 1280 px (test-results/console/). Skipped without /usr/bin/chromium unless
 * MESHAGENT_TEST_REQUIRE_BROWSER=1 (CI installs it).
 */
describe.runIf(HAVE_CHROMIUM)("the web console in headless Chromium", () => {
  let s: TestServer;
  let relay: Awaited<ReturnType<typeof smtpRelay>>;
  let hook: Receiver;
  let browser: Browser;
  const rooms: OfficialRoom[] = [];
  const checked: string[] = [];

  beforeAll(async () => {
    relay = await smtpRelay();
    hook = await Receiver.start();
    s = await startServer({
      env: {
        MESHAGENT_SMTP_RELAY_URL: `smtp://127.0.0.1:${relay.port}`,
        MESHAGENT_WEBHOOK_ALLOW_PRIVATE: "true",
        MESHAGENT_BILLING_METER_FLUSH: "0.2",
        MESHAGENT_RATE_LIMIT: "0",
      },
    });
    await s.ctx.users.setPassword(s.admin.userId, PASSWORD);
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    for (const r of rooms) r.dispose();
    await browser?.close();
    await s?.close();
    await hook?.close();
    await relay?.close();
  });

  /** Every page state the flow reaches: no serious axe violation, no browser error, screenshots at both widths. */
  async function check(page: Page, problems: string[], name: string) {
    await page.waitForLoadState("networkidle").catch(() => {});
    await page
      .locator("[role=status].loading")
      .waitFor({ state: "detached", timeout: 10_000 })
      .catch(() => {});
    expect(await seriousViolations(page), `axe on ${name}`).toEqual([]);
    await screenshots(page, name);
    expect(problems, `browser errors on ${name}`).toEqual([]);
    checked.push(name);
  }

  it("a person's flow through the console, every page scanned", async () => {
    const { page, problems, context } = await signedIn(browser, s, s.admin.email);
    await page.getByRole("heading", { level: 1, name: /projects/i }).waitFor();
    await check(page, problems, "projects");

    // A project
    await page.getByLabel("Project name").fill("Console e2e");
    await page.getByRole("button", { name: "Create project" }).click();
    await page.waitForURL(/\/console\/projects\/[0-9a-f-]{36}\/rooms/);
    const projectId = /projects\/([0-9a-f-]{36})/.exec(page.url())![1];
    const P = `${s.url}/console/projects/${projectId}`;
    await page.getByRole("heading", { level: 1, name: /rooms/i }).waitFor();
    await page
      .getByText(/no rooms/i)
      .first()
      .waitFor();
    await check(page, problems, "rooms-empty");

    // An API key, shown once
    await page.getByRole("link", { name: "API keys" }).first().click();
    await page.getByLabel("Name", { exact: true }).fill("ci key");
    await page.getByRole("button", { name: "Create key" }).click();
    const shown = page.getByTestId("shown-once-value");
    const key = (await shown.textContent())!.trim();
    expect(key.length).toBeGreaterThan(20);
    const viaKey = await s.http("GET", `/accounts/projects/${projectId}`, { token: key });
    expect(viaKey.status).toBe(200);
    await check(page, problems, "api-key-created");
    await page.getByRole("button", { name: "Done" }).click();
    await page.getByRole("cell", { name: "ci key" }).waitFor();
    expect(await page.content()).not.toContain(key);
    await page.reload();
    await page.getByRole("cell", { name: "ci key" }).waitFor();
    expect(await page.content()).not.toContain(key);
    await check(page, problems, "api-keys");

    // A room
    await page.goto(`${P}/rooms`);
    await page.getByLabel("Room name").fill("studio");
    await page.getByRole("button", { name: "Create room" }).click();
    await page.getByRole("link", { name: "studio", exact: true }).waitFor();
    await check(page, problems, "rooms");

    // A test agent hosting a toolkit in the room
    const agent = await joinRoom(roomWsUrl(s, "studio"), await mintToken(key, "studio", { name: "e2e-agent" }), { reconnectTimeout: 0 });
    rooms.push(agent);
    await within(
      startHostedToolkit({
        room: agent,
        toolkit: new Toolkit({ name: "e2e-tools", title: "e2e tools", description: "tools of the test", tools: [new AddTool()] }),
        public_: true,
      }),
      10_000,
      "register",
    );

    // The workspace: the agent among the participants, a file uploaded and listed, the tool called from its form
    await page.getByRole("link", { name: "studio", exact: true }).click();
    await page.getByText("e2e-agent").first().waitFor({ timeout: 15_000 });
    await page.getByLabel("Upload a file").setInputFiles({ name: "hello.txt", mimeType: "text/plain", buffer: Buffer.from("hello from the console test") });
    await page.getByText("hello.txt").first().waitFor({ timeout: 15_000 });
    await check(page, problems, "room-workspace");
    const tools = page.locator("section, form, div").filter({ hasText: "e2e-tools" }).last();
    await tools.waitFor();
    await page.getByLabel("a", { exact: true }).fill("19");
    await page.getByLabel("b", { exact: true }).fill("23");
    await page.getByRole("button", { name: "Call" }).first().click();
    await page.getByText(/42/).first().waitFor({ timeout: 15_000 });
    await check(page, problems, "room-tool-called");

    // A webhook and its delivery
    await page.goto(`${P}/webhooks`);
    await page.getByLabel("URL").fill(`http://127.0.0.1:${hook.port}/hook`);
    await page.getByRole("button", { name: "Create webhook" }).click();
    await check(page, problems, "webhooks");
    await page
      .getByRole("link", { name: new RegExp(`127\\.0\\.0\\.1:${hook.port}`) })
      .first()
      .click();
    await page.getByRole("button", { name: "Send test" }).click();
    await until(() => hook.requests.length > 0, 15_000, "the test delivery");
    await page.getByRole("cell", { name: /200/ }).first().waitFor({ timeout: 20_000 });
    await check(page, problems, "webhook-deliveries");

    // A member invited by email accepts in a second browser
    await page.goto(`${P}/members`);
    const email = `invitee-${Date.now()}@example.com`;
    await page.getByLabel("Email").fill(email);
    await page.getByRole("button", { name: "Invite" }).click();
    await page.getByText(email).first().waitFor();
    await check(page, problems, "members");
    await until(() => relay.mails.some((m) => m.to === email), 15_000, "the invitation mail");
    const link = invitationLink(relay.mails.find((m) => m.to === email)!.text);
    const second = await browser.newContext();
    const p2 = await second.newPage();
    await p2.goto(link);
    await p2.getByLabel("Password", { exact: true }).fill("the invitee's passphrase");
    await p2.getByLabel("Password again").fill("the invitee's passphrase");
    await p2.getByRole("button", { name: "Create my account" }).click();
    await p2.locator("h1", { hasText: "Your account is ready" }).waitFor();
    await second.close();
    const invitee = await signedIn(browser, s, email, "the invitee's passphrase");
    await invitee.page.locator("main").getByText("Console e2e").first().waitFor();
    await check(invitee.page, invitee.problems, "projects-as-member");
    // Members see the rooms they hold a grant on: none yet, until the admin grants this one.
    await invitee.page.goto(`${P}/rooms`);
    await invitee.page
      .getByText(/no rooms/i)
      .first()
      .waitFor();
    await page.goto(`${P}/rooms/studio/grants`);
    await page.getByLabel("User email").fill(email);
    await page.getByRole("button", { name: "Add grant" }).click();
    await page.getByRole("cell", { name: email }).first().waitFor();
    await check(page, problems, "room-grants");
    await invitee.page.reload();
    await invitee.page.getByRole("link", { name: "studio", exact: true }).waitFor();
    // A member sees no admin pages
    expect(await invitee.page.getByRole("link", { name: "API keys" }).count()).toBe(0);
    await check(invitee.page, invitee.problems, "rooms-as-member");
    await invitee.page.goto(`${P}/api-keys`);
    await invitee.page.getByText(/admin/i).first().waitFor();
    await check(invitee.page, invitee.problems, "api-keys-as-member");
    await invitee.context.close();

    // A session's spans
    const otelToken = await mintToken(key, "studio", { name: "otel-agent" });
    const traced = await joinRoom(roomWsUrl(s, "studio"), otelToken, { reconnectTimeout: 0 });
    rooms.push(traced);
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ "service.name": "e2e-agent" }),
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    });
    const tracer = provider.getTracer("e2e");
    const parent = tracer.startSpan("llm.call");
    const child = tracer.startSpan("tool.run", {}, trace.setSpan(otelContext.active(), parent));
    await new Promise((r) => setTimeout(r, 20));
    child.end();
    parent.end();
    const res = await fetch(`${s.url}/v1/traces`, {
      method: "POST",
      headers: { "content-type": "application/x-protobuf", authorization: `Bearer ${otelToken}` },
      body: ProtobufTraceSerializer.serializeRequest(exporter.getFinishedSpans())! as BodyInit,
    });
    expect(res.status).toBe(200);
    await page.goto(`${P}/sessions`);
    await check(page, problems, "sessions");
    await page
      .locator("main")
      .getByRole("link", { name: /Session of studio/ })
      .first()
      .click();
    await page.getByText("tool.run").first().waitFor({ timeout: 15_000 });
    await page.getByText("llm.call").first().waitFor();
    await check(page, problems, "session-spans");

    // The usage: this flow's API requests, metered
    await until(async () => (await s.client(key).getUsage(projectId)).length > 0, 20_000, "metered usage");
    await page.goto(`${P}/billing`);
    await page.locator("figure").first().waitFor({ timeout: 15_000 });
    await page.getByText(/api/i).first().waitFor();
    await check(page, problems, "billing");

    await context.close();
  }, 240_000);

  it("every other page, as an admin: scanned, with no browser errors", async () => {
    const { page, problems, context } = await signedIn(browser, s, s.admin.email);
    const P = `/console/projects/${s.admin.projectId}`;
    for (const [name, path] of [
      ["settings", `${P}/settings`],
      ["room-grants-by-user", `${P}/grants`],
      ["services", `${P}/services`],
      ["secrets", `${P}/secrets`],
      ["mailboxes", `${P}/mailboxes`],
      ["scheduled-tasks", `${P}/scheduled-tasks`],
      ["oauth-clients", `${P}/oauth-clients`],
      ["tokens", `/console/account/tokens`],
      ["not-found", `/console/nowhere`],
    ]) {
      await page.goto(s.url + path);
      await page.locator("main h1").first().waitFor();
      await check(page, problems, name);
    }
    await context.close();
  }, 180_000);
});
