import type { Clock } from "../core/clock.js";
import { ApiError, badRequest, conflict, notFound, quote } from "../core/errors.js";
import { newId } from "../core/ids.js";
import { isObj } from "../core/json.js";
import { pageOffset, pageSize } from "../core/paging.js";
import type { DB } from "../store/db.js";
import { isUniqueViolation } from "../store/errors.js";
import type { RoomsService } from "../rooms/service.js";
import type { ProjectsService } from "../projects/service.js";
import type { UsersService } from "../users/service.js";
import { checkQueueName } from "../queues/service.js";
import { mailboxesRepo, type MailboxWithRoom } from "./repo.js";

export type { MailboxWithRoom } from "./repo.js";

/** The Mailbox of wire-contract §6.5. `room_id` is always a string (the TS client rejects null). */
export interface MailboxJson {
  address: string;
  room: string;
  room_id: string;
  queue: string;
  public: boolean;
  annotations: Record<string, string>;
}

export function mailboxJson(m: MailboxWithRoom): MailboxJson {
  return {
    address: m.address,
    room: m.room_name,
    room_id: m.room_id,
    queue: m.queue,
    public: !!m.public,
    annotations: JSON.parse(m.annotations) as Record<string, string>,
  };
}

export const MAX_ADDRESS = 254;
const LOCAL_RE = /^[A-Za-z0-9_+=-]+(?:\.[A-Za-z0-9_+=-]+)*$/;
const LABEL_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * Mailbox addresses: `local@domain`. The local part is letters, digits and `_ + = -`, with single dots between
 * them (no quoting, no `/ ? # %`: the clients put the address in URL paths unencoded); at most 64 characters.
 * The domain is dot-separated DNS labels. At most 254 characters in all. Compared case-insensitively.
 */
export function checkAddress(address: unknown): string {
  if (typeof address !== "string" || !address) throw badRequest("address must be a non-empty string");
  const a = address.trim();
  if (a.length > MAX_ADDRESS) throw badRequest(`address must be at most ${MAX_ADDRESS} characters`);
  const at = a.lastIndexOf("@");
  if (at <= 0 || at === a.length - 1) throw badRequest(`address ${quote(a)} is not an email address (local@domain)`);
  const local = a.slice(0, at);
  const domain = a.slice(at + 1);
  if (local.length > 64 || !LOCAL_RE.test(local))
    throw badRequest(`address ${quote(a)}: the part before @ may use letters, digits, _ + = - and single dots, at most 64 characters`);
  if (!domain.split(".").every((l) => LABEL_RE.test(l))) throw badRequest(`address ${quote(a)}: ${quote(domain)} is not a valid domain name`);
  return a;
}

function checkAnnotations(a: unknown): Record<string, string> {
  if (a === null || a === undefined) return {};
  if (!isObj(a)) throw badRequest("annotations must be an object of strings");
  for (const [k, v] of Object.entries(a)) if (typeof v !== "string") throw badRequest(`annotations/${k} must be a string`);
  return a as Record<string, string>;
}

export interface MailboxInput {
  room: string;
  queue: string;
  public?: boolean | null;
  annotations?: Record<string, string> | null;
}

/**
 * Mailboxes: an email address (unique across the server) that delivers into a room queue. Used by the REST routes
 * and by the SMTP receiver (`forDelivery`, `senderAllowed`).
 */
export class MailboxesService {
  constructor(
    private readonly db: DB,
    private readonly clock: Clock,
    private readonly rooms: RoomsService,
    private readonly projects: ProjectsService,
    private readonly users: UsersService,
  ) {}

  private async room(projectId: string, name: unknown) {
    if (typeof name !== "string" || !name) throw badRequest("room must be a non-empty room name");
    try {
      return await this.rooms.byName(projectId, name);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) throw badRequest(`room ${quote(name)} does not exist in this project`, "room_not_found");
      throw err;
    }
  }

  private async mine(projectId: string, address: string): Promise<MailboxWithRoom> {
    const m = await mailboxesRepo.inProject(this.db, projectId, address.trim().toLowerCase());
    if (!m) throw notFound("mailbox");
    return m;
  }

  async create(projectId: string, input: MailboxInput & { address: string }): Promise<MailboxJson> {
    const address = checkAddress(input.address);
    const queue = checkQueueName(input.queue, "queue");
    const annotations = checkAnnotations(input.annotations);
    const room = await this.room(projectId, input.room);
    const lower = address.toLowerCase();
    const taken = () => conflict(`the address ${address} is already in use`);
    if (await mailboxesRepo.byAddress(this.db, lower)) throw taken();
    const now = this.clock.now();
    const row = {
      id: newId(),
      address,
      address_lower: lower,
      project_id: projectId,
      room_id: room.id,
      queue,
      public: input.public ? 1 : 0,
      annotations: JSON.stringify(annotations),
      created_at: now,
      updated_at: now,
    };
    try {
      await mailboxesRepo.insert(this.db, row);
    } catch (err) {
      if (isUniqueViolation(err)) throw taken();
      throw err;
    }
    return mailboxJson({ ...row, room_name: room.name });
  }

  /** Replace room and queue; `public` and `annotations` keep their values when absent or null. */
  async update(projectId: string, address: string, input: MailboxInput): Promise<MailboxJson> {
    const current = await this.mine(projectId, address);
    const queue = checkQueueName(input.queue, "queue");
    const room = await this.room(projectId, input.room);
    const patch = {
      room_id: room.id,
      queue,
      public: input.public === undefined || input.public === null ? current.public : input.public ? 1 : 0,
      annotations: input.annotations === undefined || input.annotations === null ? current.annotations : JSON.stringify(checkAnnotations(input.annotations)),
      updated_at: this.clock.now(),
    };
    await mailboxesRepo.update(this.db, current.id, patch);
    return mailboxJson({ ...current, ...patch, room_name: room.name });
  }

  async get(projectId: string, address: string): Promise<MailboxJson> {
    return mailboxJson(await this.mine(projectId, address));
  }

  async delete(projectId: string, address: string): Promise<void> {
    const m = await this.mine(projectId, address);
    await mailboxesRepo.delete(this.db, m.id);
  }

  /** `count` defaults to 100 (the clients' default), capped at 1000. `roomName` lists one room's mailboxes (404 if missing). */
  async list(projectId: string, opts: { count?: number; offset?: number; filter?: string | null; roomName?: string }) {
    const limit = pageSize(opts.count, 100);
    const offset = pageOffset(opts.offset);
    const roomId = opts.roomName === undefined ? undefined : (await this.rooms.byName(projectId, opts.roomName)).id;
    const filter = opts.filter?.trim() || undefined;
    const { rows, total } = await mailboxesRepo.page(this.db, projectId, { roomId, limit, offset, filter });
    return { mailboxes: rows.map(mailboxJson), total };
  }

  /** The mailbox that receives mail for an address (any project), or undefined. */
  async forDelivery(address: string): Promise<MailboxWithRoom | undefined> {
    return mailboxesRepo.byAddress(this.db, address.trim().toLowerCase());
  }

  /**
   * Whether a sender may write to a mailbox: anyone to a public mailbox; to a private one (the default) only an
   * address that is the email of a user who is a member of the mailbox's project (any role, invited users included).
   */
  async senderAllowed(m: { project_id: string; public: number }, sender: string | null | undefined): Promise<boolean> {
    if (m.public) return true;
    if (!sender) return false;
    const user = await this.users.byEmail(sender.trim());
    if (!user) return false;
    return this.projects.hasMember(m.project_id, user.id);
  }
}
