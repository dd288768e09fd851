// Hocuspocus (the best-known Yjs server) with its SQLite persistence, for bench/sync-fanout.ts: listens on PORT, keeps
// documents in DB (a file). Prints "ready" once listening.
import { Server } from "@hocuspocus/server";
import { SQLite } from "@hocuspocus/extension-sqlite";

const port = Number(process.env.PORT);
const server = new Server({ port, address: "127.0.0.1", quiet: true, extensions: [new SQLite({ database: process.env.DB! })] });
await server.listen();
process.stdout.write("ready\n");
process.on("SIGTERM", () => void server.destroy().then(() => process.exit(0)));
