import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import nodemailer from "nodemailer";
import selfsigned from "selfsigned";
import { startServer, type TestServer } from "./helpers/server.js";
import { createRoom } from "./helpers/rooms.js";
import { smtpSession } from "./helpers/smtp.js";
import { freePort, spawnServer } from "./helpers/process.js";
import type { MailMessage } from "../src/mail/service.js";

const MAX = 200_000;
const smtpEnv = (extra: Record<string, string> = {}) => ({ MESHAGENT_SMTP_PORT: "0", MESHAGENT_SMTP_MAX_BYTES: String(MAX), ...extra });

function transport(port: number, opts: Record<string, unknown> = {}) {
  return nodemailer.createTransport({ host: "127.0.0.1", port, secure: false, ignoreTLS: true, ...opts } as never);
}

async function createMailbox(s: TestServer, body: { address: string; room: string; queue: string; public: boolean }) {
  const r = await s.http("POST", `/accounts/projects/${s.admin.projectId}/mailboxes`, { json: body });
  expect(r.status).toBe(201);
}

const storageFile = (s: { dataDir: string }, roomId: string, path: string) => join(s.dataDir, "storage", "rooms", roomId, ...path.split("/"));

describe("SMTP inbound into room queues", () => {
  let s: TestServer;
  let port: number;
  let room: { id: string; name: string };
  let room2: { id: string; name: string };
  const pub = "Agent@inbound.example.com"; // stored with a capital; delivered whatever the case
  const priv = "private@inbound.example.com";
  const other = "other@inbound.example.com";

  beforeAll(async () => {
    s = await startServer({ env: smtpEnv() });
    port = s.ctx.mail.port!;
    room = await createRoom(s.ctx, s.admin.projectId, "mail-room");
    room2 = await createRoom(s.ctx, s.admin.projectId, "mail-room-2");
    await createMailbox(s, { address: pub, room: room.name, queue: "email", public: true });
    await createMailbox(s, { address: priv, room: room.name, queue: "private-email", public: false });
    await createMailbox(s, { address: other, room: room2.name, queue: "inbox", public: true });
  });
  afterAll(() => s.close());
  beforeEach(async () => {
    for (const [r, q] of [
      [room, "email"],
      [room, "private-email"],
      [room2, "inbox"],
    ] as const)
      if (await s.ctx.queues.exists(r.id, q)) await s.ctx.queues.drain(r.id, q);
  });

  it("is off unless MESHAGENT_SMTP_PORT is set", async () => {
    const plain = await startServer();
    try {
      expect(plain.ctx.mail.enabled).toBe(false);
      expect(plain.ctx.mail.port).toBeNull();
    } finally {
      await plain.close();
    }
    expect(port).toBeGreaterThan(0);
  });

  it("parses a message into the mailbox's room queue, with attachments in the room's storage", async () => {
    const pdf = Buffer.from("%PDF-1.4 not really a pdf \u0000\u0001\u00ff", "latin1");
    const binary = Buffer.from([0, 1, 2, 254, 255]);
    const info = await transport(port).sendMail({
      from: "Alice Sender <alice@outside.example>",
      to: [pub],
      cc: ["carol@elsewhere.example"],
      subject: "Hello ✓ agent",
      text: "plain body\nsecond line",
      html: "<p>html <b>body</b></p>",
      messageId: "<m1@outside.example>",
      inReplyTo: "<m0@outside.example>",
      references: ["<root@outside.example>", "<m0@outside.example>"],
      date: new Date("2026-02-03T04:05:06Z"),
      attachments: [
        { filename: "report.pdf", content: pdf, contentType: "application/pdf" },
        { filename: "report.pdf", content: "second file, same name", contentType: "text/plain" },
        { filename: "../../../etc/passwd", content: "path traversal attempt" },
        { filename: "...", content: binary, contentType: "application/octet-stream" }, // nothing usable: a fallback name
      ],
    });
    // carol is no mailbox here: refused at RCPT, the rest accepted.
    expect(info.accepted).toEqual([pub]);
    expect(info.rejected).toEqual(["carol@elsewhere.example"]);
    expect(info.response).toMatch(/^250 /);

    const got = await s.ctx.queues.take<MailMessage>(room.id, "email");
    expect(got).not.toBeNull();
    const m = got!.message;
    expect(m).toMatchObject({
      mailbox: pub,
      from: "alice@outside.example",
      to: [pub],
      cc: ["carol@elsewhere.example"],
      subject: "Hello ✓ agent",
      text: "plain body\nsecond line",
      html: "<p>html <b>body</b></p>",
      message_id: "<m1@outside.example>",
      in_reply_to: "<m0@outside.example>",
      references: ["<root@outside.example>", "<m0@outside.example>"],
      date: "2026-02-03T04:05:06.000Z",
    });
    expect(m.text?.trimEnd()).toBe("plain body\nsecond line");
    expect(m.attachments.map((a) => [a.filename, a.content_type, a.size])).toEqual([
      ["report.pdf", "application/pdf", pdf.length],
      ["report (2).pdf", "text/plain", 22],
      ["passwd", "application/octet-stream", 22],
      ["attachment-4", "application/octet-stream", 5],
    ]);
    const folder = m.attachments[0].path.slice(0, m.attachments[0].path.lastIndexOf("/"));
    expect(folder).toMatch(/^mail\/agent@inbound\.example\.com\/[0-9a-f-]{36}$/);
    for (const a of m.attachments) expect(a.path).toBe(`${folder}/${a.filename}`);
    expect(readFileSync(storageFile(s, room.id, m.attachments[0].path))).toEqual(pdf);
    expect(readFileSync(storageFile(s, room.id, m.attachments[1].path), "utf8")).toBe("second file, same name");
    expect(readFileSync(storageFile(s, room.id, m.attachments[2].path), "utf8")).toBe("path traversal attempt");
    expect(readFileSync(storageFile(s, room.id, m.attachments[3].path))).toEqual(binary);
    // nothing but the four files (no temporary leftovers)
    expect(readdirSync(storageFile(s, room.id, folder)).sort()).toEqual(["attachment-4", "passwd", "report (2).pdf", "report.pdf"]);
    expect(await s.ctx.queues.take(room.id, "email")).toBeNull();
  });

  it("enqueues one message per mailbox, even when a mailbox is addressed twice or only in Bcc", async () => {
    const info = await transport(port).sendMail({
      from: "bob@outside.example",
      to: [pub, pub.toLowerCase()],
      bcc: [other],
      subject: "fan-out",
      text: "to two mailboxes",
    });
    expect(info.rejected).toEqual([]);
    const a = await s.ctx.queues.peek<MailMessage>(room.id, "email");
    const b = await s.ctx.queues.peek<MailMessage>(room2.id, "inbox");
    expect(a.length).toBe(1);
    expect(b.length).toBe(1);
    expect(b[0].message).toMatchObject({ mailbox: other, subject: "fan-out", attachments: [] });
    expect(b[0].message.to).not.toContain(other);
    await s.ctx.queues.drain(room.id, "email");
    await s.ctx.queues.drain(room2.id, "inbox");
  });

  it("refuses an unknown recipient at RCPT with 550", async () => {
    const err = await transport(port)
      .sendMail({ from: "x@outside.example", to: "nobody@inbound.example.com", text: "hi" })
      .catch((e: Error & { responseCode?: number; rejected?: string[] }) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as { responseCode?: number }).responseCode).toBe(550);
    expect((err as { rejected?: string[] }).rejected).toEqual(["nobody@inbound.example.com"]);
    const session = await smtpSession(port);
    try {
      expect((await session.send("EHLO test.example")).code).toBe(250);
      expect((await session.send("MAIL FROM:<x@outside.example>")).code).toBe(250);
      const r = await session.send("RCPT TO:<nobody@inbound.example.com>");
      expect(r.code).toBe(550);
      expect(r.text).toMatch(/5\.1\.1 .*no such mailbox/);
    } finally {
      session.close();
    }
  });

  it("a private mailbox accepts only senders who are members of the project", async () => {
    const member = await s.user({});
    const outsider = await s.user(null); // a user of the server, not of this project
    const send = (from: string) =>
      transport(port)
        .sendMail({ from, to: priv, subject: `from ${from}`, text: "private" })
        .then(
          (i) => ({ ok: true as const, code: 250, accepted: i.accepted }),
          (e: { responseCode?: number; response?: string }) => ({ ok: false as const, code: e.responseCode, response: e.response }),
        );
    const stranger = await send("stranger@outside.example");
    expect(stranger).toMatchObject({ ok: false, code: 550, response: expect.stringMatching(/5\.7\.1 .*members of its project/) });
    expect((await send(outsider.email)).code).toBe(550);
    expect((await send(member.email)).ok).toBe(true);
    expect((await send(member.email.toUpperCase())).ok).toBe(true);
    expect((await send(s.admin.email)).ok).toBe(true);
    const queued = await s.ctx.queues.peek<MailMessage>(room.id, "private-email");
    expect(queued.map((q) => q.message.from?.toLowerCase())).toEqual([member.email, member.email, s.admin.email]);
    // A public mailbox takes mail from anyone.
    expect((await transport(port).sendMail({ from: "stranger@outside.example", to: pub, text: "hi" })).accepted).toEqual([pub]);
    await s.ctx.queues.drain(room.id, "email");
  });

  it("refuses mail over the size limit with 552, whether or not the client declares SIZE", async () => {
    const big = Buffer.alloc(MAX + 10_000, "x");
    // nodemailer declares SIZE= at MAIL FROM, so the server can refuse before the data is sent.
    const err = await transport(port)
      .sendMail({ from: "x@outside.example", to: pub, text: "big", attachments: [{ filename: "big.bin", content: big }] })
      .catch((e: { responseCode?: number }) => e);
    expect((err as { responseCode?: number }).responseCode).toBe(552);
    // A client that does not declare it is refused after DATA.
    const session = await smtpSession(port);
    try {
      const ehlo = await session.send("EHLO test.example");
      expect(ehlo.text).toContain(`SIZE ${MAX}`);
      expect((await session.send("MAIL FROM:<x@outside.example>")).code).toBe(250);
      expect((await session.send(`RCPT TO:<${pub}>`)).code).toBe(250);
      expect((await session.send("DATA")).code).toBe(354);
      const line = "y".repeat(998) + "\r\n";
      await session.write(`From: x@outside.example\r\nTo: ${pub}\r\nSubject: big\r\n\r\n` + line.repeat(Math.ceil((MAX + 5000) / line.length)));
      const r = await session.send(".");
      expect(r.code).toBe(552);
      expect(r.text).toMatch(/5\.3\.4/);
      // the connection is still usable for a message within the limit
      expect((await session.send("MAIL FROM:<x@outside.example>")).code).toBe(250);
      expect((await session.send(`RCPT TO:<${pub}>`)).code).toBe(250);
      expect((await session.send("DATA")).code).toBe(354);
      await session.write(`From: x@outside.example\r\nTo: ${pub}\r\nSubject: small\r\n\r\nfits\r\n`);
      expect((await session.send(".")).code).toBe(250);
    } finally {
      session.close();
    }
    const queued = await s.ctx.queues.peek<MailMessage>(room.id, "email");
    expect(queued.map((q) => q.message.subject)).toEqual(["small"]);
    await s.ctx.queues.drain(room.id, "email");
  });

  it("a mailbox deleted between RCPT and the end of DATA gets nothing and the sender a 550", async () => {
    const gone = "gone-soon@inbound.example.com";
    await createMailbox(s, { address: gone, room: room.name, queue: "gone", public: true });
    const session = await smtpSession(port);
    try {
      await session.send("EHLO test.example");
      await session.send("MAIL FROM:<x@outside.example>");
      expect((await session.send(`RCPT TO:<${gone}>`)).code).toBe(250);
      expect((await s.http("DELETE", `/accounts/projects/${s.admin.projectId}/mailboxes/${gone}`)).status).toBe(200);
      expect((await session.send("DATA")).code).toBe(354);
      await session.write(`From: x@outside.example\r\nTo: ${gone}\r\nSubject: late\r\n\r\ntoo late\r\n`);
      expect((await session.send(".")).code).toBe(550);
    } finally {
      session.close();
    }
    expect((await s.ctx.queues.list(room.id)).find((q) => q.name === "gone")).toBeUndefined();
  });

  it("takes at most 100 recipients per message (452 for more)", async () => {
    const many = Array.from({ length: 100 }, (_, i) => `many-${i}@inbound.example.com`);
    for (const address of many) await s.ctx.mailboxes.create(s.admin.projectId, { address, room: room.name, queue: "many", public: true });
    const session = await smtpSession(port);
    try {
      await session.send("EHLO test.example");
      await session.send("MAIL FROM:<x@outside.example>");
      for (let i = 0; i < 100; i++) expect((await session.send(`RCPT TO:<${many[i]}>`)).code).toBe(250);
      const r = await session.send(`RCPT TO:<${pub}>`);
      expect(r.code).toBe(452);
      expect(r.text).toMatch(/too many recipients/);
      expect((await session.send("DATA")).code).toBe(354);
      await session.write(`From: x@outside.example\r\nTo: ${pub}\r\nSubject: many\r\n\r\nhi\r\n`);
      expect((await session.send(".")).code).toBe(250);
    } finally {
      session.close();
    }
    expect((await s.ctx.queues.peek(room.id, "many", 1000)).length).toBe(100);
    expect((await s.ctx.queues.peek(room.id, "email")).length).toBe(0);
  });

  it("does not offer STARTTLS or AUTH without a certificate", async () => {
    const session = await smtpSession(port);
    try {
      const ehlo = await session.send("EHLO test.example");
      expect(ehlo.text).not.toMatch(/STARTTLS/);
      expect(ehlo.text).not.toMatch(/AUTH/);
    } finally {
      session.close();
    }
    const err = await transport(port, { ignoreTLS: false, requireTLS: true })
      .sendMail({ from: "x@outside.example", to: pub, text: "needs tls" })
      .catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
  });
});

describe("SMTP with STARTTLS", () => {
  let s: TestServer;
  let dir: string;
  let cert: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "meshagent-tls-"));
    const pems = await selfsigned.generate([{ name: "commonName", value: "localhost" }], {
      days: 1,
      keySize: 2048,
      extensions: [{ name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }] }],
    } as never);
    cert = pems.cert;
    writeFileSync(join(dir, "cert.pem"), pems.cert);
    writeFileSync(join(dir, "key.pem"), pems.private, { mode: 0o600 });
    s = await startServer({ env: smtpEnv({ MESHAGENT_SMTP_TLS_CERT: join(dir, "cert.pem"), MESHAGENT_SMTP_TLS_KEY: join(dir, "key.pem") }) });
  });
  afterAll(async () => {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("offers STARTTLS and delivers over it", async () => {
    const room = await createRoom(s.ctx, s.admin.projectId, "tls-room");
    await createMailbox(s, { address: "secure@tls.example.com", room: room.name, queue: "email", public: true });
    const session = await smtpSession(s.ctx.mail.port!);
    try {
      expect((await session.send("EHLO test.example")).text).toMatch(/STARTTLS/);
    } finally {
      session.close();
    }
    const info = await transport(s.ctx.mail.port!, { ignoreTLS: false, requireTLS: true, tls: { ca: [cert], servername: "localhost" } }).sendMail({
      from: "x@outside.example",
      to: "secure@tls.example.com",
      subject: "over tls",
      text: "encrypted",
    });
    expect(info.accepted).toEqual(["secure@tls.example.com"]);
    expect((await s.ctx.queues.take<MailMessage>(room.id, "email"))?.message.subject).toBe("over tls");
  });
});

describe("durability of queued mail", () => {
  it("queued messages and their attachments survive a restart on the same data", async () => {
    const dir = mkdtempSync(join(tmpdir(), "meshagent-restart-"));
    let s2: TestServer | undefined;
    try {
      const s1 = await startServer({ env: smtpEnv(), keepData: dir, keepDatabase: true });
      const room = await createRoom(s1.ctx, s1.admin.projectId, "durable-room");
      await createMailbox(s1, { address: "durable@restart.example.com", room: room.name, queue: "email", public: true });
      for (const subject of ["first", "second"])
        await transport(s1.ctx.mail.port!).sendMail({
          from: "x@outside.example",
          to: "durable@restart.example.com",
          subject,
          text: subject,
          attachments: [{ filename: `${subject}.txt`, content: `content of ${subject}` }],
        });
      // claim one without acknowledging it: after the restart it is delivered again (at-least-once)
      expect((await s1.ctx.queues.receive<MailMessage>(room.id, "email", { visibilityMs: 1 }))?.message.subject).toBe("first");
      await s1.close();

      s2 = await startServer({ env: smtpEnv(), keepData: dir, databaseUrl: s1.databaseUrl });
      expect(await s2.ctx.queues.list(room.id)).toEqual([expect.objectContaining({ name: "email", size: 2 })]);
      const got = [];
      for (let m; (m = await s2.ctx.queues.take<MailMessage>(room.id, "email"));) got.push(m.message);
      // the redelivered one queues up behind the one never delivered
      expect(got.map((m) => m.subject)).toEqual(["second", "first"]);
      for (const m of got) expect(readFileSync(storageFile(s2, room.id, m.attachments[0].path), "utf8")).toBe(`content of ${m.subject}`);
      // the mailbox still works after the restart
      expect(
        (await transport(s2.ctx.mail.port!).sendMail({ from: "x@outside.example", to: "durable@restart.example.com", text: "again" })).accepted,
      ).toHaveLength(1);
    } finally {
      await s2?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a message the server answered 250 for survives kill -9", async () => {
    const dir = mkdtempSync(join(tmpdir(), "meshagent-kill-"));
    let s2: TestServer | undefined;
    try {
      const s1 = await startServer({ keepData: dir, keepDatabase: true });
      const room = await createRoom(s1.ctx, s1.admin.projectId, "kill-room");
      await createMailbox(s1, { address: "killed@kill.example.com", room: room.name, queue: "email", public: true });
      await s1.close();

      const smtpPort = await freePort();
      // The real server process (`src/main.ts serve`), with SMTP on.
      const srv = await spawnServer({ MESHAGENT_DATA_DIR: dir, MESHAGENT_DATABASE_URL: s1.databaseUrl, MESHAGENT_SMTP_PORT: String(smtpPort) });
      try {
        await waitForSmtp(smtpPort, srv.output);
        const info = await transport(smtpPort).sendMail({
          from: "x@outside.example",
          to: "killed@kill.example.com",
          subject: "before the crash",
          text: "must survive",
          attachments: [{ filename: "proof.txt", content: "attachment before the crash" }],
        });
        expect(info.response).toMatch(/^250 /);
      } finally {
        await srv.kill("SIGKILL");
      }
      s2 = await startServer({ keepData: dir, databaseUrl: s1.databaseUrl });
      const m = (await s2.ctx.queues.take<MailMessage>(room.id, "email"))?.message;
      expect(m?.subject).toBe("before the crash");
      expect(existsSync(storageFile(s2, room.id, m!.attachments[0].path))).toBe(true);
      expect(readFileSync(storageFile(s2, room.id, m!.attachments[0].path), "utf8")).toBe("attachment before the crash");
    } finally {
      await s2?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

async function waitForSmtp(port: number, log: () => string) {
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      const s = await smtpSession(port);
      s.close();
      return;
    } catch {
      if (Date.now() > until) throw new Error(`the server did not start: ${log()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
