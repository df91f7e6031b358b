# syntax=docker/dockerfile:1
#
# acemux in a container: a build stage compiles the TypeScript with every dependency, and the
# runtime stage holds only what `node dist/main/cli.js` needs (production dependencies, dist/,
# assets/), running as the unprivileged `node` user. See docs/CONTAINER.md.

FROM node:24-slim AS build
WORKDIR /app
# Dependencies first, so a source change does not reinstall them. Install scripts are skipped:
# the only one (msgpackr-extract) would compile a native addon that its prebuilt package provides.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

FROM node:24-slim AS runtime
ENV NODE_ENV=production \
    ACEMUX_LISTEN=:8080 \
    ACEMUX_STATE_DIR=/var/lib/acemux
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
# `npm run build` copies the dashboard page beside dashboard.js (dist/main/ops).
COPY --from=build /app/dist ./dist
COPY assets ./assets
# A writable place for state (the event journal) that the node user owns; mount a volume here.
RUN mkdir -p /var/lib/acemux && chown node:node /var/lib/acemux
USER node
EXPOSE 8080
# slim images have no curl: node itself asks /livez, on the port ACEMUX_LISTEN names.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "const p=(process.env.ACEMUX_LISTEN||':8080').split(':').pop()||'8080';fetch('http://127.0.0.1:'+p+'/livez',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# cli.ts shuts down gracefully on SIGTERM (bounded at 10 s); give it that signal, not SIGKILL.
STOPSIGNAL SIGTERM
CMD ["node", "dist/main/cli.js"]
