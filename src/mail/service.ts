import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import type { SMTPServer, SMTPServerAddress, SMTPServerDataStream, SMTPServerSession } from "smtp-server";
import type { AddressObject, ParsedMail } from "mailparser";
import pino from "pino";
import type { SmtpConfig } from "../config.js";
import { newId } from "../core/ids.js";
import { inTx, type DB } from "../store/db.js";
import type { QueuesService } from "../queues/service.js";
import type { MailboxesService, MailboxWithRoom } from "../mailboxes/service.js";
import { safeFilename, uniqueName, type AttachmentSink } from "./attachments.js";

/** What a mailbox's room queue receives for each message (one per mailbox, even when addressed to it twice). */
export interface MailMessage {
  /** The mailbox address this copy was delivered for (it may be only in Bcc). */
  mailbox: string;
  from: string | null;
  to: string[];
  cc: string[];
  subject: string | null;
  text: string | null;
  html: string | null;
  message_id: string | null;
  in_reply_to: string | null;
  references: string[];
  /** The Date header as ISO-8601, or null. */
  date: string | null;
  attachments: { filename: string; content_type: string; size: number; path: string }[];
}

/** The logger calls the mail service makes (pino and Fastify's logger both fit). */
interface MailLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  child(bindings: Record<string, unknown>): MailLog;
}

/** RFC 5321 asks servers to take at least 100; more per message get 452 and the client sends the rest separately. */
export const MAX_RECIPIENTS = 100;

type SmtpError = Error & { responseCode?: number };
const smtpError = (code: number, message: string): SmtpError => Object.assign(new Error(message), { responseCode: code });

function addresses(a: AddressObject | AddressObject[] | undefined): string[] {
  const list = Array.isArray(a) ? a : a ? [a] : [];
  const out: string[] = [];
  const walk = (entries: AddressObject["value"]) => {
    for (const e of entries) {
      if (e.address) out.push(e.address);
      if (e.group) walk(e.group);
    }
  };
  for (const o of list) walk(o.value);
  return out;
}

/** The storage folder of one delivery: `mail/<mailbox address, lower case>/<delivery id>/`. */
export const attachmentFolder = (addressLower: string, deliveryId: string) => `mail/${safeFilename(addressLower, "mailbox")}/${deliveryId}`;

/**
 * Inbound SMTP: accepts mail for known mailbox addresses and enqueues it into each mailbox's room queue.
 *
 * * `RCPT TO` an unknown address: 550. A private mailbox accepts only an envelope sender (`MAIL FROM`) that is the
 *   email of a project member: 550 otherwise.
 * * Messages over `maxBytes`: 552 (announced with the SIZE extension, so clients may learn it at `MAIL FROM`).
 * * The message is parsed, its attachments written to the room's storage, and one queue message per mailbox is
 *   committed (all in one transaction) before the server answers 250: an accepted message is durable.
 *   A failure before that answers 451, so the sending server retries.
 * * At most 100 recipients per message (452 for more: the sending server retries them in another transaction).
 * * No AUTH and no relaying: this is a receiving (MX) server, not a submission server.
 */
export class MailService {
  private server?: SMTPServer;
  private log: MailLog;
  private boundPort: number | null = null;

  constructor(
    private readonly config: SmtpConfig,
    private readonly db: DB,
    private readonly mailboxes: MailboxesService,
    private readonly queues: QueuesService,
    private readonly sink: AttachmentSink,
    log: MailLog = pino({ name: "smtp" }),
  ) {
    this.log = log;
  }

  get enabled(): boolean {
    return this.config.port !== null;
  }

  /** The port the SMTP server listens on, or null when it is not running. */
  get port(): number | null {
    return this.boundPort;
  }

  /** Start listening when MESHAGENT_SMTP_PORT is set; a no-op otherwise. */
  async start(log?: MailLog): Promise<void> {
    if (!this.enabled || this.server) return;
    if (log) this.log = log.child({ area: "smtp" });
    const tls = this.config.tlsCert && this.config.tlsKey ? { cert: readFileSync(this.config.tlsCert), key: readFileSync(this.config.tlsKey) } : null;
    // Loaded only when SMTP is on (smtp-server and mailparser are not needed to start the server).
    const { SMTPServer } = await import("smtp-server");
    const server = new SMTPServer({
      name: this.config.hostname,
      banner: "MeshAgent mail",
      size: this.config.maxBytes,
      authOptional: true,
      disabledCommands: tls ? ["AUTH"] : ["AUTH", "STARTTLS"],
      hideSTARTTLS: !tls,
      ...(tls ?? {}),
      secure: false,
      logger: false,
      closeTimeout: 2_000,
      socketTimeout: 60_000,
      onRcptTo: (address, session, cb) => {
        this.checkRecipient(address, session).then(
          () => cb(),
          (err: SmtpError) => {
            if (err.responseCode) return cb(err);
            this.log.error({ err: { message: err.message, stack: err.stack } }, "recipient check failed");
            cb(smtpError(451, "4.3.0 temporary failure, try again later"));
          },
        );
      },
      onData: (stream, session, cb) => this.onData(stream, session, cb),
    });
    server.on("error", (err) => this.log.warn({ err: { message: err.message } }, "smtp connection error"));
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.server.once("error", onError);
      server.listen(this.config.port ?? 0, this.config.host, () => {
        server.server.off("error", onError);
        resolve();
      });
    });
    this.server = server;
    this.boundPort = (server.server.address() as AddressInfo).port;
    this.log.info({ port: this.boundPort, host: this.config.host, starttls: !!tls }, "smtp listening");
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.boundPort = null;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async checkRecipient(address: SMTPServerAddress, session: SMTPServerSession): Promise<void> {
    if (session.envelope.rcptTo.length >= MAX_RECIPIENTS) throw smtpError(452, `4.5.3 too many recipients (at most ${MAX_RECIPIENTS} per message)`);
    const m = await this.mailboxes.forDelivery(address.address);
    if (!m) throw smtpError(550, `5.1.1 <${address.address}>: no such mailbox`);
    const sender = session.envelope.mailFrom ? session.envelope.mailFrom.address : null;
    if (!(await this.mailboxes.senderAllowed(m, sender)))
      throw smtpError(550, `5.7.1 <${address.address}>: this mailbox accepts mail only from members of its project`);
  }

  private onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback: (err?: Error | null, message?: string) => void) {
    const chunks: Buffer[] = [];
    let size = 0;
    let answered = false;
    const cb = (err?: Error | null, message?: string) => {
      if (answered) return;
      answered = true;
      callback(err, message);
    };
    stream.on("data", (c: Buffer) => {
      size += c.length;
      if (size <= this.config.maxBytes) chunks.push(c);
    });
    stream.on("error", (err) => cb(err));
    stream.on("end", () => {
      if (stream.sizeExceeded || size > this.config.maxBytes)
        return cb(smtpError(552, `5.3.4 message exceeds the maximum size of ${this.config.maxBytes} bytes`));
      const rcpts = session.envelope.rcptTo.map((r) => r.address);
      const sender = session.envelope.mailFrom ? session.envelope.mailFrom.address : null;
      this.deliver(Buffer.concat(chunks), rcpts, sender).then(
        (ids) => (ids.length ? cb(null, `2.0.0 queued as ${ids.join(",")}`) : cb(smtpError(550, "5.1.1 the mailbox no longer exists"))),
        (err: Error) => {
          this.log.error({ err: { message: err.message, stack: err.stack } }, "mail delivery failed");
          cb(smtpError(451, "4.3.0 temporary failure, try again later"));
        },
      );
    });
  }

  /**
   * Parse a raw message and deliver it to the mailboxes of the given recipient addresses: attachments to storage first,
   * then every queue message in one transaction. Returns the queue message ids. `sender` (the envelope's MAIL FROM)
   * stands in for a missing From header.
   */
  async deliver(raw: Buffer, recipients: string[], sender: string | null = null): Promise<string[]> {
    const boxes = new Map<string, MailboxWithRoom>();
    for (const r of recipients) {
      const m = await this.mailboxes.forDelivery(r);
      if (m) boxes.set(m.id, m);
    }
    if (boxes.size === 0) return [];
    const { simpleParser } = await import("mailparser");
    const parsed = await simpleParser(raw, { skipImageLinks: true, skipTextToHtml: true });
    const deliveries: { box: MailboxWithRoom; message: MailMessage }[] = [];
    for (const box of boxes.values()) deliveries.push({ box, message: await this.prepare(box, parsed, sender) });
    const notify: (() => void)[] = [];
    const ids = await inTx(this.db, async (tx) => {
      const out: string[] = [];
      for (const d of deliveries) {
        const r = await this.queues.enqueue(tx, d.box.room_id, d.box.queue, d.message);
        notify.push(r.notify);
        out.push(r.id);
      }
      return out;
    });
    for (const n of notify) n();
    this.log.info({ mailboxes: deliveries.map((d) => d.box.address_lower), queued: ids }, "mail delivered");
    return ids;
  }

  /** Store the attachments in the mailbox's room and build its queue message. */
  private async prepare(box: MailboxWithRoom, p: ParsedMail, sender: string | null): Promise<MailMessage> {
    const folder = attachmentFolder(box.address_lower, newId());
    const taken = new Set<string>();
    const attachments: MailMessage["attachments"] = [];
    let n = 0;
    for (const a of p.attachments) {
      n++;
      const name = uniqueName(safeFilename(a.filename, `attachment-${n}`), taken);
      const path = `${folder}/${name}`;
      await this.sink.write(box.project_id, box.room_id, path, a.content);
      attachments.push({ filename: name, content_type: a.contentType || "application/octet-stream", size: a.content.length, path });
    }
    const refs = p.references === undefined ? [] : Array.isArray(p.references) ? p.references : [p.references];
    return {
      mailbox: box.address,
      from: addresses(p.from)[0] ?? (sender || null),
      to: addresses(p.to),
      cc: addresses(p.cc),
      subject: p.subject ?? null,
      text: p.text ?? null,
      html: typeof p.html === "string" ? p.html : null,
      message_id: p.messageId ?? null,
      in_reply_to: p.inReplyTo ?? null,
      references: refs,
      date: p.date && !Number.isNaN(p.date.getTime()) ? p.date.toISOString() : null,
      attachments,
    };
  }
}
