import { atLeast, type ProjectAccess } from "../auth/principal.js";
import { forbidden } from "../core/errors.js";
import type { GrantsService } from "../grants/service.js";
import { fullScope } from "../tokens/scope.js";
import type { ParticipantTokens, Signer } from "../tokens/service.js";
import { roomUrl } from "./service.js";

/**
 * connect_room: who gets which participant token for a room. Admins, developers and API keys get the full ApiScope;
 * a member gets their room grant's scope (403 without one); a participant token cannot mint others. API-key
 * callers' tokens are signed with that key (kid = key id), users' with the project's signing key.
 */
export class RoomConnector {
  constructor(
    private readonly grants: Pick<GrantsService, "connectLookup">,
    private readonly tokens: Pick<ParticipantTokens, "mint">,
    private readonly publicUrl: () => string,
  ) {}

  async connect(access: ProjectAccess, roomName: string) {
    const pid = access.projectId;
    const p = access.principal;
    if (p.kind === "participant") throw forbidden("a participant token cannot mint room tokens");
    let grant;
    let api;
    let name: string;
    let signer: Signer;
    if (p.kind === "api_key") {
      grant = await this.grants.connectLookup(pid, roomName, null);
      api = fullScope();
      name = `apikey-${p.keyId}`;
      signer = { kind: "api_key", keyId: p.keyId };
    } else {
      grant = await this.grants.connectLookup(pid, roomName, p.userId);
      if (atLeast(access.role, "developer")) api = fullScope();
      else if (grant.scope) api = grant.scope;
      else throw forbidden("you have no grant on this room");
      name = grant.email ?? p.userId;
      signer = { kind: "project" };
    }
    const room = grant.room;
    const jwt = await this.tokens.mint({ projectId: pid, signer, name, room: room.name, role: "user", api });
    return { jwt, room_name: room.name, project_id: pid, room_url: roomUrl(this.publicUrl(), room.name) };
  }
}
