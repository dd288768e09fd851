import type { RoomRow } from "../rooms/service.js";
import type { SessionRow } from "../sessions/service.js";
import { encodeMessage, nextServerMessageId, pack } from "./protocol.js";
import type { RoomScope } from "./scope.js";

export interface RoomStats {
  messages: number;
  queueSends: number;
  queueReceives: number;
  bytesIn: number;
  bytesOut: number;
  /** Calls routed to toolkits participants host (agents.ts). */
  toolCalls: number;
}

/** What a room needs of a participant's socket (the Connection of connection.ts). */
export interface RoomMember {
  readonly id: string;
  readonly role: string;
  readonly scope: Pick<RoomScope, "messagingList">;
  attributes: Record<string, unknown>;
  messaging: boolean;
  /** Write already-encoded frames. */
  sendFrames(frames: Buffer[]): void;
  /** A server→client `messaging.send`. */
  deliver(from: string, type: string, message: unknown, attachment?: Buffer): void;
}

/**
 * A room this process serves right now: its session, its sockets, messaging presence. `C` is the type of its
 * sockets (the server's is ActiveRoom<Connection>); the room itself only needs RoomMember of them.
 */
export class ActiveRoom<C extends RoomMember = RoomMember> {
  readonly connections = new Map<string, C>();
  /** Upgrades in flight (counted so the empty timer does not end the session under them). */
  pending = 0;
  emptyTimer: NodeJS.Timeout | null = null;
  readonly stats: RoomStats = { messages: 0, queueSends: 0, queueReceives: 0, bytesIn: 0, bytesOut: 0, toolCalls: 0 };
  flushed: RoomStats = { messages: 0, queueSends: 0, queueReceives: 0, bytesIn: 0, bytesOut: 0, toolCalls: 0 };
  closing = false;
  /** Per queue: the line of long-polling receives (see the queues toolkit). */
  readonly queueGates = new Map<string, Promise<void>>();
  /** Queues this room has used (they exist unless closed since). */
  readonly knownQueues = new Set<string>();

  constructor(
    readonly room: Pick<RoomRow, "id" | "project_id" | "name">,
    readonly session: SessionRow,
  ) {}

  get id() {
    return this.room.id;
  }

  presence(c: RoomMember) {
    return { id: c.id, role: c.role, attributes: c.attributes };
  }

  /** Send one server message to many connections, encoded once. */
  fanout(targets: Iterable<RoomMember>, type: string, header: unknown, tail?: Buffer) {
    const frames = encodeMessage(nextServerMessageId(), type, pack(header, tail));
    for (const t of targets) t.sendFrames(frames);
  }

  /** Other participants that see presence: messaging enabled and allowed to list. */
  private watchers(except: RoomMember) {
    const out: RoomMember[] = [];
    for (const c of this.connections.values()) if (c !== except && c.messaging && c.scope.messagingList()) out.push(c);
    return out;
  }

  enableMessaging(c: RoomMember) {
    const already = c.messaging;
    c.messaging = true;
    const others = c.scope.messagingList() ? [...this.connections.values()].filter((o) => o !== c && o.messaging).map((o) => this.presence(o)) : [];
    c.deliver(c.id, "messaging.enabled", { participants: others });
    if (!already) this.fanout(this.watchers(c), "messaging.send", { from_participant_id: c.id, type: "participant.enabled", message: this.presence(c) });
  }

  disableMessaging(c: RoomMember) {
    if (!c.messaging) return;
    c.messaging = false;
    this.fanout(this.watchers(c), "messaging.send", { from_participant_id: c.id, type: "participant.disabled", message: { id: c.id } });
  }

  attributesChanged(c: RoomMember) {
    if (!c.messaging) return;
    this.fanout(this.watchers(c), "messaging.send", { from_participant_id: c.id, type: "participant.attributes", message: { attributes: c.attributes } });
  }
}
