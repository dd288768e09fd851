import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { SSEServerTransport } from "@modelcontextprotocol/sdk/server/sse.js";
import { ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { stringify as toYaml } from "yaml";
import { startServer, type TestServer } from "./helpers/server.js";
import { guardedFetch } from "../src/core/ssrf.js";

/**
 * POST /mcp/discover (wire contract §4.2 `discover_mcp_spec`), black-box: real MCP servers built with the official SDK
 * on loopback (Streamable HTTP, legacy SSE only, paginated tools, OAuth-protected, token-protected) plus servers that
 * are not MCP, against our server started with MESHAGENT_MCP_ALLOW_PRIVATE=1 (and one without it).
 */

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => unknown;
interface Local {
  url: string;
  server: http.Server;
  connections(): Promise<number>;
  close(): Promise<void>;
}

async function listen(handler: Handler): Promise<Local> {
  const server = http.createServer((req, res) => {
    Promise.resolve(handler(req, res)).catch((err) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    server,
    connections: () => new Promise((r, j) => server.getConnections((e, n) => (e ? j(e) : r(n)))),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
  res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(body));

const text = (content: string) => async () => ({ content: [{ type: "text" as const, text: content }] });

/** The demo server: two read-only tools, two others (one explicitly not read-only, one without annotations). */
function weatherServer() {
  const s = new McpServer(
    { name: "Demo Weather", title: "Demo Weather Service", version: "1.2.3", description: "Forecasts and weather alerts" },
    { instructions: "Use get_forecast for forecasts; alerts need set_alert." },
  );
  s.registerTool("get_forecast", { description: "the forecast", annotations: { readOnlyHint: true } }, text("sunny"));
  s.registerTool("list_alerts", { annotations: { readOnlyHint: true, title: "Alerts" } }, text("none"));
  s.registerTool("set_alert", { description: "create an alert", annotations: { readOnlyHint: false, destructiveHint: false } }, text("ok"));
  s.registerTool("delete_alert", { description: "remove an alert" }, text("ok"));
  return s;
}

/** Streamable HTTP, stateless: a fresh server and transport per POST (the SDK's stateless example). */
function streamableHandler(make: () => McpServer | Server, opts: { json?: boolean } = {}): Handler {
  return async (req, res) => {
    if (new URL(req.url!, "http://x").pathname !== "/mcp") return void res.writeHead(404, { "content-type": "text/plain" }).end("Not Found");
    if (req.method !== "POST") return void res.writeHead(405, { allow: "POST" }).end();
    const server = make();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: opts.json });
    res.on("close", () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res);
  };
}

/** A server on the legacy HTTP+SSE transport only: GET /sse streams, POST /messages?sessionId= carries messages. */
function sseHandler(): Handler {
  const sessions = new Map<string, SSEServerTransport>();
  return async (req, res) => {
    const u = new URL(req.url!, "http://x");
    if (req.method === "GET" && u.pathname === "/sse") {
      const transport = new SSEServerTransport("/messages", res);
      sessions.set(transport.sessionId, transport);
      res.on("close", () => sessions.delete(transport.sessionId));
      const server = new McpServer({ name: "legacy-notes", version: "0.9.0" });
      server.registerTool("read_note", { annotations: { readOnlyHint: true } }, text("a note"));
      server.registerTool("write_note", {}, text("written"));
      await server.connect(transport);
      return;
    }
    if (req.method === "POST" && u.pathname === "/messages") {
      const t = sessions.get(u.searchParams.get("sessionId") ?? "");
      if (!t) return void res.writeHead(404).end("no session");
      await t.handlePostMessage(req, res);
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("Not Found");
  };
}

/** A low-level server whose tools come in three pages (cursor "1", "2"), answering JSON instead of SSE. */
function pagedServer() {
  const s = new Server({ name: "paged tools", version: "1" }, { capabilities: { tools: {} } });
  s.setRequestHandler(ListToolsRequestSchema, async (req) => {
    const page = Number(req.params?.cursor ?? 0);
    const tools = [0, 1].map((i) => ({
      name: `tool_${page}_${i}`,
      inputSchema: { type: "object" as const },
      annotations: { readOnlyHint: i === 0 },
    }));
    return { tools, ...(page < 2 ? { nextCursor: String(page + 1) } : {}) };
  });
  return s;
}

describe("POST /mcp/discover", () => {
  let s: TestServer;
  let strict: TestServer;
  let quick: TestServer;
  const local: Record<string, Local> = {};
  let as: Local;
  let asDcr: Local;
  let closedUrl: string;

  const discover = (body: unknown, o: { server?: TestServer; token?: string | null } = {}) =>
    (o.server ?? s).http("POST", "/mcp/discover", { json: body, token: o.token });

  beforeAll(async () => {
    [s, strict, quick] = await Promise.all([
      startServer({ env: { MESHAGENT_MCP_ALLOW_PRIVATE: "1" } }),
      startServer(),
      startServer({ env: { MESHAGENT_MCP_ALLOW_PRIVATE: "true", MESHAGENT_MCP_DISCOVERY_TIMEOUT_MS: "700" } }),
    ]);
    local.streamable = await listen(streamableHandler(weatherServer));
    local.paged = await listen(streamableHandler(pagedServer, { json: true }));
    local.sse = await listen(sseHandler());
    // Authorization servers (RFC 8414): one without dynamic client registration, one with it.
    const asMetadata = (base: string, dcr: boolean) => ({
      issuer: base,
      authorization_endpoint: `${base}/authorize`,
      token_endpoint: `${base}/token`,
      response_types_supported: ["code"],
      code_challenge_methods_supported: ["S256"],
      ...(dcr ? { registration_endpoint: `${base}/register` } : {}),
    });
    as = await listen((req, res) =>
      req.url === "/.well-known/oauth-authorization-server" ? json(res, 200, asMetadata(as.url, false)) : json(res, 404, { error: "not_found" }),
    );
    asDcr = await listen((req, res) =>
      req.url === "/.well-known/openid-configuration"
        ? json(res, 200, {
            ...asMetadata(asDcr.url, true),
            jwks_uri: `${asDcr.url}/jwks`,
            subject_types_supported: ["public"],
            id_token_signing_alg_values_supported: ["RS256"],
          })
        : json(res, 404, { error: "not_found" }),
    );
    // Protected MCP servers: 401 with a resource_metadata pointer (RFC 9728), metadata naming the authorization server.
    const protectedHandler =
      (self: () => Local, authServer: () => Local, name: string): Handler =>
      (req, res) => {
        const base = self().url;
        if (req.url === "/.well-known/oauth-protected-resource/mcp")
          return json(res, 200, {
            resource: `${base}/mcp`,
            authorization_servers: [authServer().url],
            scopes_supported: ["files.read", "files.write"],
            resource_name: name,
          });
        json(
          res,
          401,
          { error: "invalid_token" },
          { "www-authenticate": `Bearer error="invalid_token", resource_metadata="${base}/.well-known/oauth-protected-resource/mcp"` },
        );
      };
    local.oauth = await listen(
      protectedHandler(
        () => local.oauth,
        () => as,
        "Acme Files",
      ),
    );
    local.oauthDcr = await listen(
      protectedHandler(
        () => local.oauthDcr,
        () => asDcr,
        "Acme Drive",
      ),
    );
    // Wants a token and publishes no OAuth metadata at all.
    local.token = await listen((_req, res) => json(res, 401, { error: "unauthorized" }, { "www-authenticate": 'Bearer realm="api"' }));
    local.html = await listen((_req, res) =>
      res
        .writeHead(200, { "content-type": "text/html; charset=utf-8" })
        .end("<!doctype html><html><head><title>Welcome to nginx!</title></head><body><h1>It works</h1></body></html>"),
    );
    local.notFound = await listen((_req, res) => res.writeHead(404, { "content-type": "text/plain" }).end("Not Found"));
    local.plainJson = await listen((_req, res) => json(res, 200, { hello: "world" }));
    local.hang = await listen(() => {}); // accepts and never answers
    local.down = await listen((_req, res) => res.writeHead(503, { "content-type": "text/plain" }).end("upstream down"));
    // Same-origin redirects are followed (by the SDK); one to another origin is not.
    local.moved = await listen((req, res) => {
      if (req.url === "/old") return void res.writeHead(308, { location: "/mcp" }).end();
      if (req.url === "/elsewhere") return void res.writeHead(307, { location: `${local.streamable.url}/mcp` }).end();
      return streamableHandler(weatherServer)(req, res);
    });
    const gone = await listen(() => {});
    closedUrl = `${gone.url}/mcp`;
    await gone.close();
  });

  afterAll(async () => {
    await Promise.all([...Object.values(local), as, asDcr].filter(Boolean).map((l) => l.close()));
    await Promise.all([s, strict, quick].filter(Boolean).map((x) => x.close()));
  });

  describe("a Streamable HTTP server", () => {
    it("answers a ServiceSpec with the server's name, description and tools split read-only / other", async () => {
      const url = `${local.streamable.url}/mcp`;
      const port = Number(new URL(url).port);
      const res = await discover({ url });
      expect(res.status, res.text).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/application\/json/);
      expect(res.json).toEqual({
        version: "v1",
        kind: "Service",
        metadata: { name: "demo-weather", description: "Forecasts and weather alerts", annotations: { "meshagent.service.id": url } },
        external: { url: local.streamable.url },
        ports: [
          {
            num: port,
            type: "http",
            endpoints: [
              {
                path: "/mcp",
                mcp: {
                  label: "demo-weather",
                  description: "Forecasts and weather alerts",
                  allowed_tools: [{ tool_names: ["get_forecast", "list_alerts"], read_only: true }, { tool_names: ["set_alert", "delete_alert"] }],
                },
              },
            ],
          },
        ],
      });
    });

    it("answers the same content as a ServiceTemplateSpec with format=template (no variables needed)", async () => {
      const url = `${local.streamable.url}/mcp`;
      const service = (await discover({ url, format: "service" })).json;
      const res = await discover({ url, format: "template" });
      expect(res.status, res.text).toBe(200);
      expect(res.json).toEqual({ ...service, kind: "ServiceTemplate" });
      expect(res.json).not.toHaveProperty("variables");
    });

    it("treats format null as absent, and works with a user token as with an API key", async () => {
      const url = `${local.streamable.url}/mcp`;
      const a = await discover({ url, format: null });
      const b = await discover({ url }, { token: s.admin.userToken });
      expect(a.status, a.text).toBe(200);
      expect(b.status, b.text).toBe(200);
      expect(a.json.kind).toBe("Service");
      expect(b.json).toEqual(a.json);
    });

    it("follows tools/list cursors (JSON responses)", async () => {
      const res = await discover({ url: `${local.paged.url}/mcp` });
      expect(res.status, res.text).toBe(200);
      const mcp = res.json.ports[0].endpoints[0].mcp;
      expect(mcp.label).toBe("paged-tools");
      expect(mcp.allowed_tools).toEqual([
        { tool_names: ["tool_0_0", "tool_1_0", "tool_2_0"], read_only: true },
        { tool_names: ["tool_0_1", "tool_1_1", "tool_2_1"] },
      ]);
      expect(res.json.metadata).toEqual({
        name: "paged-tools",
        description: `paged tools: MCP server at ${local.paged.url}/mcp`,
        annotations: { "meshagent.service.id": `${local.paged.url}/mcp` },
      });
    });

    it("is accepted unchanged by POST /accounts/projects/{id}/services when that route exists", async () => {
      const spec = (await discover({ url: `${local.streamable.url}/mcp` })).json;
      const res = await s.http("POST", `/accounts/projects/${s.admin.projectId}/services`, { json: spec });
      if (res.status === 404 && /^no route for/.test(res.json?.error?.message ?? "")) {
        console.warn(`POST /accounts/projects/{id}/services answered 404 (${res.text}): the services area is not there yet; assertion skipped`);
        return;
      }
      expect([200, 201], res.text).toContain(res.status);
      expect(res.json).toMatchObject({ kind: "Service", external: spec.external, ports: spec.ports });
    });
  });

  describe("a legacy HTTP+SSE server", () => {
    it("is found through the SSE fallback when the Streamable HTTP POST gets a 4xx, and every connection is closed", async () => {
      const url = `${local.sse.url}/sse`;
      const res = await discover({ url });
      expect(res.status, res.text).toBe(200);
      expect(res.json.metadata.name).toBe("legacy-notes");
      expect(res.json.external).toEqual({ url: local.sse.url });
      expect(res.json.ports[0].endpoints[0]).toEqual({
        path: "/sse",
        mcp: {
          label: "legacy-notes",
          description: `MCP tools exposed by ${url}`,
          allowed_tools: [{ tool_names: ["read_note"], read_only: true }, { tool_names: ["write_note"] }],
        },
      });
      // The SSE stream and the POST connections are gone once the answer is out.
      let open = await local.sse.connections();
      for (let i = 0; i < 50 && open > 0; i++) {
        await new Promise((r) => setTimeout(r, 20));
        open = await local.sse.connections();
      }
      expect(open).toBe(0);
    });
  });

  describe("servers that want authorization", () => {
    it("reads the OAuth endpoints through RFC 9728 protected-resource and RFC 8414 metadata", async () => {
      const url = `${local.oauth.url}/mcp`;
      const res = await discover({ url });
      expect(res.status, res.text).toBe(200);
      expect(res.json.metadata.name).toBe("acme-files");
      const mcp = res.json.ports[0].endpoints[0].mcp;
      expect(mcp).toEqual({
        label: "acme-files",
        description: `MCP tools exposed by ${url}`,
        oauth: { authorization_endpoint: `${as.url}/authorize`, token_endpoint: `${as.url}/token`, scopes: ["files.read", "files.write"] },
      });
      expect(mcp).not.toHaveProperty("allowed_tools"); // the tool list is not known without credentials
    });

    it("declares the OAuth client as template variables when the authorization server has no dynamic registration", async () => {
      const res = await discover({ url: `${local.oauth.url}/mcp`, format: "template" });
      expect(res.status, res.text).toBe(200);
      expect(res.json.kind).toBe("ServiceTemplate");
      expect(res.json.variables).toEqual([
        { name: "oauth_client_id", title: "OAuth client ID", description: expect.stringContaining(new URL(as.url).host) },
        { name: "oauth_client_secret", title: "OAuth client secret", description: expect.any(String), obscure: true },
      ]);
      expect(res.json.ports[0].endpoints[0].mcp.oauth).toEqual({
        client_id: "{{ oauth_client_id }}",
        client_secret: "{{ oauth_client_secret }}",
        authorization_endpoint: `${as.url}/authorize`,
        token_endpoint: `${as.url}/token`,
        scopes: ["files.read", "files.write"],
      });
    });

    it("needs no variables when the authorization server registers clients dynamically (OpenID discovery)", async () => {
      const res = await discover({ url: `${local.oauthDcr.url}/mcp`, format: "template" });
      expect(res.status, res.text).toBe(200);
      expect(res.json).not.toHaveProperty("variables");
      expect(res.json.metadata.name).toBe("acme-drive");
      expect(res.json.ports[0].endpoints[0].mcp.oauth).toEqual({
        authorization_endpoint: `${asDcr.url}/authorize`,
        token_endpoint: `${asDcr.url}/token`,
        scopes: ["files.read", "files.write"],
      });
    });

    it("its templates create working services from {template, values} when the services route exists", async () => {
      const create = (body: unknown) => s.http("POST", `/accounts/projects/${s.admin.projectId}/services`, { json: body });
      const oauth = (await discover({ url: `${local.oauth.url}/mcp`, format: "template" })).json;
      const res = await create({ template: toYaml(oauth), values: { oauth_client_id: "cid-1", oauth_client_secret: "s3cret" } });
      if (res.status === 404 && /^no route for/.test(res.json?.error?.message ?? "")) {
        console.warn("POST /accounts/projects/{id}/services is not there yet: template assertion skipped");
        return;
      }
      expect([200, 201], res.text).toContain(res.status);
      expect(res.json.kind).toBe("Service");
      expect(res.json.ports[0].endpoints[0].mcp.oauth).toMatchObject({ client_id: "cid-1", client_secret: "s3cret", token_endpoint: `${as.url}/token` });
      const token = (await discover({ url: `${local.token.url}/mcp`, format: "template" })).json;
      const t = await create({ template: toYaml(token), values: { token: "tok-123" } });
      expect([200, 201], t.text).toContain(t.status);
      expect(t.json.ports[0].endpoints[0].mcp.headers).toEqual({ Authorization: "Bearer tok-123" });
    });

    it("asks for a token (obscure variable, Authorization header) when there is no OAuth metadata", async () => {
      const url = `${local.token.url}/mcp`;
      const service = await discover({ url });
      expect(service.status, service.text).toBe(200);
      expect(service.json.ports[0].endpoints[0].mcp).toEqual({ label: "mcp", description: `MCP tools exposed by ${url}` });
      const template = await discover({ url, format: "template" });
      expect(template.status, template.text).toBe(200);
      expect(template.json.variables).toEqual([
        { name: "token", title: "Access token", description: expect.stringContaining("Authorization: Bearer"), obscure: true },
      ]);
      expect(template.json.ports[0].endpoints[0].mcp.headers).toEqual({ Authorization: "Bearer {{ token }}" });
    });
  });

  describe("what is not an MCP server", () => {
    it("an HTML page → 422 not_mcp_server saying what came back", async () => {
      const res = await discover({ url: `${local.html.url}/` });
      expect(res.status, res.text).toBe(422);
      expect(res.json.error.code).toBe("not_mcp_server");
      expect(res.json.error.message).toMatch(/HTML page/);
      expect(res.json.error.message).toContain("Welcome to nginx!");
    });

    it("404 everywhere → 422 not_mcp_server naming both transports' answers", async () => {
      const res = await discover({ url: `${local.notFound.url}/mcp` });
      expect(res.status, res.text).toBe(422);
      expect(res.json.error.code).toBe("not_mcp_server");
      expect(res.json.error.message).toMatch(/HTTP 404/);
      expect(res.json.error.message).toMatch(/legacy SSE/);
    });

    it("JSON that is not JSON-RPC → 422 not_mcp_server", async () => {
      const res = await discover({ url: `${local.plainJson.url}/api` });
      expect(res.status, res.text).toBe(422);
      expect(res.json.error.code).toBe("not_mcp_server");
      expect(res.json.error.message).toMatch(/not a JSON-RPC message/);
      expect(res.json.error.message).toContain("hello");
    });

    it("a redirect to another origin is not followed → 422 not_mcp_server naming the target; one within the origin is", async () => {
      const res = await discover({ url: `${local.moved.url}/elsewhere` });
      expect(res.status, res.text).toBe(422);
      expect(res.json.error.code).toBe("not_mcp_server");
      expect(res.json.error.message).toContain(`redirecting to ${local.streamable.url}/mcp`);
      const same = await discover({ url: `${local.moved.url}/old` });
      expect(same.status, same.text).toBe(200);
      expect(same.json.metadata.name).toBe("demo-weather");
      expect(same.json.ports[0].endpoints[0].path).toBe("/old");
    });

    it("a 503 → 422 mcp_unreachable", async () => {
      const res = await discover({ url: `${local.down.url}/mcp` });
      expect(res.status, res.text).toBe(422);
      expect(res.json.error.code).toBe("mcp_unreachable");
      expect(res.json.error.message).toMatch(/HTTP 503/);
    });

    it("something that does not speak HTTP, or answers a status no HTTP client accepts → 422 not_mcp_server", async () => {
      for (const banner of ["SSH-2.0-OpenSSH_9.6\r\n", "HTTP/1.1 999 Weird\r\ncontent-length: 0\r\n\r\n"]) {
        const tcp = net.createServer((sock) => sock.resume().end(banner));
        await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", r));
        try {
          const res = await discover({ url: `http://127.0.0.1:${(tcp.address() as AddressInfo).port}/mcp` });
          expect(res.status, res.text).toBe(422);
          expect(res.json.error.code, res.text).toBe("not_mcp_server");
        } finally {
          await new Promise((r) => tcp.close(r));
        }
      }
    });

    it("a closed port → 422 mcp_unreachable (connection refused)", async () => {
      const res = await discover({ url: closedUrl });
      expect(res.status, res.text).toBe(422);
      expect(res.json.error.code).toBe("mcp_unreachable");
      expect(res.json.error.message).toMatch(/connection refused/);
    });

    it("a server that never answers → 422 mcp_unreachable within the time budget", async () => {
      const t0 = Date.now();
      const res = await discover({ url: `${local.hang.url}/mcp` }, { server: quick });
      expect(res.status, res.text).toBe(422);
      expect(res.json.error.code).toBe("mcp_unreachable");
      expect(res.json.error.message).toMatch(/within 700 ms/);
      expect(Date.now() - t0).toBeLessThan(5000);
      let open = await local.hang.connections();
      for (let i = 0; i < 50 && open > 0; i++) {
        await new Promise((r) => setTimeout(r, 20));
        open = await local.hang.connections();
      }
      expect(open).toBe(0);
    });
  });

  describe("SSRF rules", () => {
    it("refuses loopback and private targets without MESHAGENT_MCP_ALLOW_PRIVATE (400 naming the setting)", async () => {
      const port = new URL(local.streamable.url).port;
      for (const url of [
        `http://127.0.0.1:${port}/mcp`,
        `http://localhost:${port}/mcp`,
        `http://[::1]:${port}/mcp`,
        "http://10.1.2.3/mcp",
        "http://169.254.169.254/latest",
        "http://0x7f000001/",
      ]) {
        const res = await discover({ url }, { server: strict });
        expect(res.status, `${url}: ${res.text}`).toBe(400);
        expect(res.json.error.code, url).toBe("address_not_allowed");
        expect(res.json.error.message, url).toMatch(/private|loopback|link-local/);
        expect(res.json.error.message, url).toContain("MESHAGENT_MCP_ALLOW_PRIVATE");
      }
    });

    it("checks every resolved address at connect time and follows no redirect into private space", async () => {
      const port = new URL(local.streamable.url).port;
      const g = guardedFetch({ allowPrivate: false, maxBodyBytes: 1024 });
      try {
        // `localhost` is only refused by the connect-time lookup here (nothing checked the URL before).
        const err = await g.fetch(`http://localhost:${port}/mcp`).catch((e) => e);
        expect(err).toBeInstanceOf(TypeError);
        expect(err.code).toBe("EPRIVATEADDR");
        const lit = await g.fetch(`http://127.0.0.1:${port}/mcp`).catch((e) => e);
        expect(lit.code).toBe("EPRIVATEADDR");
      } finally {
        g.close();
      }
      // With private addresses allowed: a redirect is followed by hand and each hop is checked again.
      const redirector = await listen((req, res) => {
        if (req.url === "/to-file") return void res.writeHead(302, { location: "file:///etc/passwd" }).end();
        if (req.url === "/to-creds") return void res.writeHead(302, { location: "http://u:p@127.0.0.1/" }).end();
        if (req.url === "/loop") return void res.writeHead(302, { location: "/loop" }).end();
        res.writeHead(302, { location: "/final" }).end();
      });
      const ok = guardedFetch({ allowPrivate: true, maxBodyBytes: 1024 });
      try {
        expect((await ok.fetch(`${redirector.url}/to-file`).catch((e) => e)).code).toBe("EBADURL");
        expect((await ok.fetch(`${redirector.url}/to-creds`).catch((e) => e)).code).toBe("EBADURL");
        expect((await ok.fetch(`${redirector.url}/loop`).catch((e) => e)).code).toBe("EREDIRECT");
        const manual = await ok.fetch(`${redirector.url}/x`, { redirect: "manual" });
        expect(manual.status).toBe(302);
        expect(manual.headers.get("location")).toBe("/final");
      } finally {
        ok.close();
        await redirector.close();
      }
    });

    it("caps response bodies", async () => {
      const big = await listen((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end("x".repeat(5000)));
      const g = guardedFetch({ allowPrivate: true, maxBodyBytes: 1000 });
      try {
        expect((await g.fetch(big.url).catch((e) => e)).code).toBe("ETOOLARGE");
      } finally {
        g.close();
        await big.close();
      }
    });
  });

  describe("bad requests", () => {
    it("refuses invalid URLs, schemes, credentials, queries and bad bodies with 400", async () => {
      const cases: [unknown, RegExp][] = [
        [{ url: "not a url" }, /valid absolute URL/],
        [{ url: "ftp://example.com/mcp" }, /http or https/],
        [{ url: "file:///etc/passwd" }, /http or https/],
        [{ url: "http://user:pw@example.com/mcp" }, /credentials/],
        [{ url: "https://example.com/mcp?key=1" }, /query/],
        [{ url: "https://example.com/mcp#x" }, /fragment/],
        [{ url: "https://example.com/" + "a".repeat(3000) }, /2048|longer/],
        [{}, /url/],
        [{ url: 42 }, /url/],
        [{ url: "" }, /url/],
        [{ url: "https://example.com/mcp", format: "yaml" }, /format/],
        [{ url: "https://example.com/mcp", extra: 1, format: 7 }, /format/],
      ];
      for (const [body, message] of cases) {
        const res = await discover(body);
        expect(res.status, `${JSON.stringify(body).slice(0, 80)}: ${res.text}`).toBe(400);
        expect(res.json.error.message).toMatch(message);
      }
      const raw = await s.http("POST", "/mcp/discover", { body: "{not json", headers: { "content-type": "application/json" } });
      expect(raw.status).toBe(400);
    });

    it("needs credentials (401), any kind of bearer", async () => {
      const res = await discover({ url: `${local.streamable.url}/mcp` }, { token: null });
      expect(res.status).toBe(401);
      expect(res.json.error.code).toBe("unauthorized");
      const junk = await discover({ url: `${local.streamable.url}/mcp` }, { token: "ma-junk" });
      expect(junk.status).toBe(401);
    });
  });
});
