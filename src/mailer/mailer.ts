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
  /** Created with the first mail (nodemailer is loaded then, not at start-up). */
  private transport: Promise<Transport> | null = null;

  constructor(
    private readonly cfg: { relayUrl: string | null; from: string },
    private readonly log: { warn(obj: object, msg: string): void },
  ) {}

  private relay(): Promise<Transport> {
    return (this.transport ??= import("nodemailer").then(
      ({ default: nodemailer }) => nodemailer.createTransport(this.cfg.relayUrl!, { from: this.cfg.from }) as unknown as Transport,
    ));
  }

  /** Whether mail actually leaves (a relay is configured). */
  get sends(): boolean {
    return this.cfg.relayUrl !== null;
  }

  async send(m: OutboundMail): Promise<void> {
    if (!this.cfg.relayUrl) {
      this.log.warn(
        { to: m.to, subject: m.subject, text: m.text },
        "no MESHAGENT_SMTP_RELAY_URL: this mail was not sent; pass its link on yourself, or set a relay",
      );
      return;
    }
    await (await this.relay()).sendMail({ from: this.cfg.from, to: m.to, subject: m.subject, text: m.text, ...(m.html ? { html: m.html } : {}) });
  }

  close() {
    void this.transport?.then(
      (t) => t.close(),
      () => {},
    );
  }
}
