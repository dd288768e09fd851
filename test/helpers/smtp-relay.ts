import { SMTPServer } from "smtp-server";
import { simpleParser } from "mailparser";

/** A real SMTP relay on loopback: every mail it accepts, parsed. */
export async function smtpRelay() {
  const mails: { to: string; subject: string; text: string }[] = [];
  let refuse = 0;
  const srv = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    onData(stream, session, cb) {
      if (refuse > 0) {
        refuse--;
        stream.resume();
        stream.on("end", () => cb(Object.assign(new Error("try later"), { responseCode: 451 })));
        return;
      }
      simpleParser(stream)
        .then((m) => {
          mails.push({ to: session.envelope.rcptTo.map((r) => r.address).join(","), subject: m.subject ?? "", text: m.text ?? "" });
          cb();
        })
        .catch(cb);
    },
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.server.address() as { port: number }).port;
  return { mails, port, refuseNext: (n: number) => (refuse = n), close: () => new Promise<void>((r) => srv.close(() => r())) };
}

/** The invitation link in a mail's text. */
export const invitationLink = (text: string) => /https?:\/\/\S+\/accounts\/invitation\?token=[\w%-]+/.exec(text)![0];
