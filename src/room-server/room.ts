import type { RoomRow } from "../rooms/service.js";
import type { SessionRow } from "../sessions/service.js";
import type { Connection } from "./connection.js";
import { encodeMessage, pack } from "./protocol.js";
import { nextServerMessageId } from "./connection.js";

export interface RoomStats {
  messages: number;
  queueSends: number;
  queueReceives: number;
  bytesIn: number;
  bytesOut: number;
}

/** A room this process serves right now: its session, its sockets, messaging presence. */
export class ActiveRoom {
  readonly connections = new Map<string, Connection>();
  /** Upgrades in flight (counted so the empty timer does not end the session under them). */
  pending = 0;
  emptyTimer: NodeJS.Timeout | null = null;
  readonly stats: RoomStats = { messages: 0, queueSends: 0, queueReceives: 0, bytesIn: 0, bytesOut: 0 };
  flushed: RoomStats = { messages: 0, queueSends: 0, queueReceives: 0, bytesIn: 0, bytesOut: 0 };
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

  presence(c: Connection) {
    return { id: c.id, role: c.role, attributes: c.attributes };
  }

  /** Send one server message to many connections, encoded once. */
  fanout(targets: Iterable<Connection>, type: string, header: unknown, tail?: Buffer) {
    const frames = encodeMessage(nextServerMessageId(), type, pack(header, tail));
    for (const t of targets) t.sendFrames(frames);
  }

  /** Other participants that see presence: messaging enabled and allowed to list. */
  private watchers(except: Connection) {
    const out: Connection[] = [];
    for (const c of this.connections.values()) if (c !== except && c.messaging && c.scope.messagingList()) out.push(c);
    return out;
  }

  enableMessaging(c: Connection) {
    const already = c.messaging;
    c.messaging = true;
    const others = c.scope.messagingList() ? [...this.connections.values()].filter((o) => o !== c && o.messaging).map((o) => this.presence(o)) : [];
    c.deliver(c.id, "messaging.enabled", { participants: others });
    if (!already) this.fanout(this.watchers(c), "messaging.send", { from_participant_id: c.id, type: "participant.enabled", message: this.presence(c) });
  }

  disableMessaging(c: Connection) {
    if (!c.messaging) return;
    c.messaging = false;
    this.fanout(this.watchers(c), "messaging.send", { from_participant_id: c.id, type: "participant.disabled", message: { id: c.id } });
  }

  attributesChanged(c: Connection) {
    if (!c.messaging) return;
    this.fanout(this.watchers(c), "messaging.send", { from_participant_id: c.id, type: "participant.attributes", message: { attributes: c.attributes } });
  }
}
