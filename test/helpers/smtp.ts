import { connect, type Socket } from "node:net";

/**
 * A bare SMTP conversation over a socket, for what nodemailer does not let a test control (leaving out SIZE=,
 * reading the EHLO extensions). `send(line)` writes one command and resolves with the server's complete reply.
 */
export async function smtpSession(port: number, host = "127.0.0.1") {
  const sock: Socket = connect(port, host);
  let buf = "";
  let waiting: ((reply: { code: number; text: string }) => void) | null = null;
  const tryReply = () => {
    // A reply is complete at a line "ddd <text>" (no dash after the code).
    const lines = buf.split("\r\n");
    for (let i = 0; i < lines.length - 1; i++) {
      if (/^\d{3} /.test(lines[i]) || /^\d{3}$/.test(lines[i])) {
        const text = lines.slice(0, i + 1).join("\n");
        buf = lines.slice(i + 1).join("\r\n");
        const w = waiting;
        waiting = null;
        w?.({ code: Number(lines[i].slice(0, 3)), text });
        return;
      }
    }
  };
  sock.on("data", (d) => {
    buf += d.toString("latin1");
    if (waiting) tryReply();
  });
  const next = () =>
    new Promise<{ code: number; text: string }>((resolve, reject) => {
      waiting = resolve;
      sock.once("error", reject);
      tryReply();
    });
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", () => resolve());
    sock.once("error", reject);
  });
  const greeting = await next();
  return {
    greeting,
    async send(line: string) {
      const p = next();
      sock.write(line + "\r\n");
      return p;
    },
    /** Write raw bytes (a message body) without waiting for a reply. */
    write(data: string | Buffer) {
      return new Promise<void>((resolve) => sock.write(data, () => resolve()));
    },
    next,
    close() {
      sock.destroy();
    },
  };
}
