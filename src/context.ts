import type { createContext } from "./services.js";

/**
 * Everything a route file may use: exactly what `createContext` (services.ts) builds, less `close()`. Tests build
 * it the same way. There is no second list to keep: a service added there is on the context.
 */
export type AppContext = Omit<Awaited<ReturnType<typeof createContext>>, "close">;
