import nodemailer from "nodemailer";

export interface OutboundMail {
  to: string;
  subject: string;
  text: string;
  html?: string;
}

interface Transport {
  sendMail(m: { from: string; to: string; subject: string; text: string; html?: string }): Promise<unknown>;
  close(): void;
}

/**
 * Outbound mail (invitations, password resets) through the SMTP relay at MESHAGENT_SMTP_RELAY_URL, with nodemailer.
 * Without a relay nothing is sent: the mail's text (with its link) is logged at warn, so an operator can pass it on.
 * `send` throws when the relay refuses or cannot be reached (callers retry).
 */
export class Mailer {
  private readonly transport: Transport | null;

  constructor(
    private readonly cfg: { relayUrl: string | null; from: string },
    private readonly log: { warn(obj: object, msg: string): void },
  ) {
    this.transport = cfg.relayUrl ? (nodemailer.createTransport(cfg.relayUrl, { from: cfg.from }) as unknown as Transport) : null;
  }

  /** Whether mail actually leaves (a relay is configured). */
  get sends(): boolean {
    return this.transport !== null;
  }

  async send(m: OutboundMail): Promise<void> {
    if (!this.transport) {
      this.log.warn(
        { to: m.to, subject: m.subject, text: m.text },
        "no MESHAGENT_SMTP_RELAY_URL: this mail was not sent; pass its link on yourself, or set a relay",
      );
      return;
    }
    await this.transport.sendMail({ from: this.cfg.from, to: m.to, subject: m.subject, text: m.text, ...(m.html ? { html: m.html } : {}) });
  }

  close() {
    this.transport?.close();
  }
}
