# The MeshAgent server image. Build: `docker build -t meshagent-server .` (docs/container.md).
# Without access to Docker Hub, scripts/docker-base-images.sh first makes the two FROM images from this machine.

# --- deps: every dependency (the build needs the dev ones), native modules compiled. It depends on the manifests
# alone, so these layers (the slow part: the download and node-gyp) are reused while package-lock.json is unchanged.
FROM node:20-bookworm AS deps
WORKDIR /app
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
COPY package.json package-lock.json ./
COPY packages/sdk/package.json packages/sdk/
COPY packages/cli/package.json packages/cli/
COPY packages/console/package.json packages/console/
RUN npm ci --ignore-scripts
# better-sqlite3 is compiled here by node-gyp when no prebuilt binary can be downloaded (python3, make, g++).
RUN npm rebuild better-sqlite3 esbuild

# --- prod-deps: the production dependencies only, and of better-sqlite3 only its compiled module.
FROM deps AS prod-deps
RUN npm prune --omit=dev \
 && cd node_modules/better-sqlite3 \
 && rm -rf deps src build/deps build/Release/obj build/Release/obj.target build/Release/.deps build/Release/*.a build/Release/test_extension.node

# --- build: the server (tsc into dist/) and the workspaces (packages/sdk/dist, packages/cli/dist, the console's static
# files in packages/console/dist).
FROM deps AS build
COPY tsconfig.json tsconfig.build.json ./
COPY bin bin
COPY src src
COPY packages packages
RUN npm run build

# --- runtime: node, the production dependencies and the compiled server; nothing else.
FROM node:20-bookworm-slim
WORKDIR /app
# The server's user (no login, home /data) and its data directory, the one writable place.
RUN echo 'meshagent:x:10001:10001:meshagent:/data:/sbin/nologin' >> /etc/passwd \
 && echo 'meshagent:x:10001:' >> /etc/group \
 && mkdir -p /data \
 && chown 10001:10001 /data \
 && chmod 700 /data
COPY --from=prod-deps /app/package.json ./
COPY --from=prod-deps /app/node_modules node_modules
COPY --from=build /app/bin bin
COPY --from=build /app/dist dist
COPY --from=build /app/packages/sdk/package.json packages/sdk/
COPY --from=build /app/packages/sdk/dist packages/sdk/dist
COPY --from=build /app/packages/cli/package.json packages/cli/
COPY --from=build /app/packages/cli/bin packages/cli/bin
COPY --from=build /app/packages/cli/dist packages/cli/dist
COPY --from=build /app/packages/console/dist packages/console/dist
ENV NODE_ENV=production \
    MESHAGENT_HOST=0.0.0.0 \
    MESHAGENT_PORT=8080 \
    MESHAGENT_DATA_DIR=/data \
    MESHAGENT_LOG_FORMAT=json
VOLUME /data
EXPOSE 8080
USER 10001:10001
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.MESHAGENT_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node is PID 1 and handles SIGTERM and SIGINT itself (a graceful stop, exit code 0): no init process needed.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/main.js"]
CMD ["serve"]
