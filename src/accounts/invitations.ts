import type { Clock } from "../core/clock.js";
import { hashPassword, randomSecret, sha256Hex, type Sealer } from "../core/crypto.js";
import { ApiError, badRequest, gone, notFound } from "../core/errors.js";
import type { DomainEvent } from "../core/events.js";
import { newId } from "../core/ids.js";
import { inTx, type DB, type Queryable } from "../store/db.js";
import type { Mailer } from "../mailer/mailer.js";
import type { UsersService } from "../users/service.js";
import type { ProjectsService } from "../projects/service.js";
import { invitationsRepo } from "./repo.js";
import { checkPassword } from "./passwords.js";

export const INVITATION_TTL_MS = 7 * 24 * 3600 * 1000;
const MAX_ATTEMPTS = 10;
const SEND_LEASE_MS = 60_000;
const SWEEP_MS = 30_000;

export const invitationAad = (id: string) => `invitation:${id}`;

/**
 * Invitations by email. When someone unknown is invited (a room grant by email, add_user_to_project by email: both
 * add an invited user to a project), an invitation is written in that same transaction and its mail sent right after
 * the commit; the row is an outbox, so a crash or a refusing relay is retried (backoff, up to 10 attempts, by any
 * process). The mail carries a single-use link, valid 7 days; following it shows a page where the person chooses a
 * password (and a name): the invited user becomes a real account, with everything they were granted meanwhile.
 */
export class InvitationsService {
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly db: DB,
    private readonly clock: Clock,
    private readonly sealer: Sealer,
    private readonly mailer: Mailer,
    private readonly users: Pick<UsersService, "get" | "acceptInvitation">,
    private readonly projects: Pick<ProjectsService, "get">,
    private readonly publicUrl: () => string,
    private readonly log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void },
  ) {}

  /** Bus subscriber, inside the transaction that added a user to a project: invite them if they have no account yet. */
  async onEvent(q: Queryable, e: DomainEvent): Promise<void> {
    if (e.type !== "project.user.added") return;
    const userId = String(e.data.user_id);
    const u = await this.users.get(userId, q);
    if (!u || u.invited !== 1 || u.password_hash !== null) return;
    const id = newId();
    const token = randomSecret(32);
    const now = this.clock.now();
    await invitationsRepo.insert(q, {
      id,
      user_id: userId,
      project_id: e.project_id,
      token_hash: sha256Hex(token),
      token_sealed: this.sealer.seal(token, invitationAad(id)),
      created_at: now,
      expires_at: now + INVITATION_TTL_MS,
      sent_at: null,
      attempts: 0,
      next_attempt_at: now,
      last_error: null,
      used_at: null,
    });
  }

  /** After-commit listener: send what is due now. */
  onCommitted(e: DomainEvent) {
    if (e.type === "project.user.added") void this.flush();
  }

  start() {
    this.timer = setInterval(() => void this.flush(), SWEEP_MS);
    this.timer.unref();
    void this.flush();
  }

  async stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flushing;
  }

  /** Send every invitation mail that is due (one flush at a time in this process; rows are claimed across processes). */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => this.flush());
    this.flushing = (async () => {
      try {
        for (;;) {
          const due = await invitationsRepo.due(this.db, this.clock.now(), 50);
          if (!due.length) return;
          let sent = 0;
          for (const { id } of due) if (await this.deliver(id)) sent++;
          if (sent === 0) return;
        }
      } catch (e) {
        this.log.warn({ err: e }, "invitation outbox: could not read it");
      } finally {
        this.flushing = null;
      }
    })();
    return this.flushing;
  }

  private async deliver(id: string): Promise<boolean> {
    const row = await invitationsRepo.byId(this.db, id);
    if (!row || row.sent_at !== null || row.next_attempt_at === null || row.token_sealed === null) return false;
    const now = this.clock.now();
    if (!(await invitationsRepo.claim(this.db, id, row.next_attempt_at, now + SEND_LEASE_MS))) return false;
    try {
      const user = await this.users.get(row.user_id);
      if (!user) return false;
      const project = row.project_id ? await this.projects.get(row.project_id).catch(() => null) : null;
      const token = this.sealer.open(row.token_sealed, invitationAad(id));
      const link = `${this.publicUrl()}/accounts/invitation?token=${encodeURIComponent(token)}`;
      const where = project ? `the project "${project.name}"` : "a project";
      await this.mailer.send({
        to: user.email,
        subject: project ? `You are invited to ${project.name} on MeshAgent` : "You are invited to MeshAgent",
        text:
          `You have been invited to ${where} on the MeshAgent server at ${this.publicUrl()}.\n\n` +
          `To accept, choose a password here (the link works once, for 7 days):\n\n${link}\n\n` +
          `If you did not expect this invitation, ignore this mail.\n`,
      });
      await invitationsRepo.update(this.db, id, {
        sent_at: this.clock.now(),
        token_sealed: null,
        next_attempt_at: null,
        attempts: row.attempts + 1,
        last_error: null,
      });
      return true;
    } catch (e) {
      const attempts = row.attempts + 1;
      const giveUp = attempts >= MAX_ATTEMPTS;
      await invitationsRepo
        .update(this.db, id, {
          attempts,
          last_error: String((e as Error)?.message ?? e).slice(0, 500),
          next_attempt_at: giveUp ? null : this.clock.now() + Math.min(3600_000, 30_000 * 2 ** (attempts - 1)),
        })
        .catch(() => {});
      (giveUp ? this.log.error : this.log.warn).call(
        this.log,
        { err: e, invitation: id, attempts },
        giveUp ? "invitation mail failed; giving up" : "invitation mail failed; will retry",
      );
      return false;
    }
  }

  /** The invitation behind a link: 404 unknown, 410 used or expired. */
  async open(token: string) {
    if (!token || token.length > 200) throw notFound("invitation");
    const row = await invitationsRepo.byTokenHash(this.db, sha256Hex(token));
    if (!row) throw notFound("invitation");
    if (row.used_at !== null) throw gone("this invitation was already used: sign in instead");
    if (row.expires_at <= this.clock.now()) throw gone("this invitation expired: ask whoever invited you to invite you again");
    const user = await this.users.get(row.user_id);
    if (!user) throw notFound("invitation");
    if (user.invited !== 1 || user.password_hash !== null) throw gone("this account exists already: sign in instead");
    const project = row.project_id ? await this.projects.get(row.project_id).catch(() => null) : null;
    return { row, user, projectName: project?.name ?? null };
  }

  /** Accept: the invited user chooses a password (and a name) and becomes a real account; the link is spent. */
  async accept(token: string, input: { password: string; password_confirm: string; first_name?: string; last_name?: string }) {
    const { row, user } = await this.open(token);
    if (input.password !== input.password_confirm) throw badRequest("the two passwords differ", "password_mismatch");
    checkPassword(input.password, user.email);
    const names = { first_name: clean(input.first_name), last_name: clean(input.last_name) };
    // scrypt takes a while: hash before the transaction, which then only writes.
    const password_hash = await hashPassword(input.password);
    await inTx(this.db, async (tx) => {
      if (!(await invitationsRepo.use(tx, row.id, this.clock.now()))) throw gone("this invitation was already used: sign in instead");
      await this.users.acceptInvitation(user.id, { password_hash, ...names }, tx);
      await invitationsRepo.closeOthers(tx, user.id, this.clock.now());
    });
    return { email: user.email };
  }
}

function clean(v: string | undefined): string | null {
  const t = (v ?? "").trim();
  if (t.length > 200) throw new ApiError(400, "invalid_request", "a name must be at most 200 characters");
  return t || null;
}
