// Runs s3rver (an S3-compatible server from npm) on a loopback port in its own process and prints {"port":N}.
// Started by test/helpers/s3.ts with --openssl-legacy-provider: s3rver encrypts ListObjectsV2 continuation tokens
// with DES, which OpenSSL 3 only offers through its legacy provider (without it every truncated listing is a 500).
import S3rver from "s3rver";

const directory = process.argv[2];
if (!directory) throw new Error("usage: s3rver-process.mjs <directory>");
const server = new S3rver({ port: 0, address: "127.0.0.1", directory, silent: true });
const { port } = await server.run();
process.stdout.write(JSON.stringify({ port }) + "\n");
const stop = async () => {
  await server.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
