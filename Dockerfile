# syntax=docker/dockerfile:1
#
# acemux in a container: a build stage compiles the TypeScript with every dependency, and the
# runtime stage holds only what `node dist/main/cli.js` needs: production dependencies and the
# compiled proxy (dist/main, dist/shared, dist/workers, the dashboard page), without the engine
# simulator, its sample stream or source maps. Runs as the unprivileged `node` user.
# Podman: build with `podman build --format docker`, or the OCI format drops HEALTHCHECK.
# See docs/CONTAINER.md.

FROM node:24-slim AS build
WORKDIR /app
# Dependencies first, so a source change does not reinstall them. Install scripts are skipped:
# the only one (msgpackr-extract) would compile a native addon that its prebuilt package provides.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
# .dockerignore leaves the simulator (src/sim) out. Source maps are deleted: node reads them only
# with --enable-source-maps, so they would be dead weight in the runtime stage.
RUN npm run build && find dist -name '*.map' -delete

FROM node:24-slim AS runtime
# The listen address is acemux's own default (:8080), not an ENV here: an ENV ACEMUX_LISTEN
# would win over acexy's ACEXY_LISTEN_ADDR (ACEMUX_* names come first), and an acexy user's
# port setting would be silently ignored.
ENV NODE_ENV=production \
    ACEMUX_STATE_DIR=/var/lib/acemux
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
# `npm run build` copies the dashboard page beside dashboard.js (dist/main/ops).
COPY --from=build /app/dist/main ./dist/main
COPY --from=build /app/dist/shared ./dist/shared
COPY --from=build /app/dist/workers ./dist/workers
# A writable place for state (the event journal) that the node user owns; mount a volume here.
RUN mkdir -p /var/lib/acemux && chown node:node /var/lib/acemux
USER node
EXPOSE 8080
# Asks /livez on the address acemux itself listens on, however it was given (ACEMUX_LISTEN,
# --listen, ACEXY_LISTEN_ADDR, the default): healthcheck.js reads acemux's config from /proc.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "dist/main/healthcheck.js"]
# cli.ts shuts down gracefully on SIGTERM, bounded at 8 s: below `docker stop`'s 10 s.
STOPSIGNAL SIGTERM
# Arguments after the image name are acemux's: `docker run acemux --engine http://…`.
ENTRYPOINT ["node", "dist/main/cli.js"]
CMD []
