import type { Toolkit } from "../../room-server/connection.js";
import { empty, ErrorCode, invalid, json, ToolError } from "../../room-server/protocol.js";
import type { ServiceHost } from "../host.js";

/**
 * The room `services` toolkit (0.39.9 ServicesClient): `list` answers `{services_json: [ServiceSpec], service_states:
 * [ServiceRuntimeState]}` for the room's services (project ones and the room's own), states only for those this session
 * runs; `restart {service_id}` stops the service's container and starts it again. Listing needs `services.list`
 * (default true), restarting the `services` section.
 */
export function servicesToolkit(host: Pick<ServiceHost, "states" | "restart">): Toolkit {
  return {
    tools: {
      async list(call) {
        call.conn.scope.servicesList();
        const { records, states } = await host.states(call.room);
        return json({ services_json: records.map((r) => ({ ...r.spec, id: r.id })), service_states: states });
      },
      async restart(call) {
        call.conn.scope.servicesRequire();
        const id = call.args.service_id;
        if (typeof id !== "string" || !id) throw invalid("service_id must be a non-empty string");
        const r = await host.restart(call.room, id);
        if (r === "not_found") throw new ToolError(`no service ${JSON.stringify(id.slice(0, 100))} runs in this room`, ErrorCode.SERVICE_NOT_FOUND);
        return empty();
      },
    },
  };
}
