# One image for every `pkm` command: server, client (init container), agent (sidecar), release.
#   docker build -t cluster-pk-manager .
#   docker run -v pkm-data:/data -p 8000:8000 cluster-pk-manager server --listen 0.0.0.0:8000 --insecure
# scripts/check-image-steps.sh runs the same steps without Docker (CI runs it).

# Build: dev dependencies, TypeScript, then the JavaScript in dist/.
FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Runtime dependencies only (level's prebuilt LevelDB binary is in its package).
FROM node:20.20.2-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
# `pkm` on PATH, for exec hooks (`pkm release` in a preStop): no shell or env needed to run it.
RUN printf '#!/nodejs/bin/node\nimport("/app/dist/cli.js");\n' > /app/pkm \
 && mkdir -m 0700 /data

# Run: distroless Node 20 on Debian 12 (as bookworm above): no shell, no package manager,
# user nonroot (65532).
FROM gcr.io/distroless/nodejs20-debian12:nonroot
ENV NODE_ENV=production \
    PKM_DATA_DIR=/data
WORKDIR /app
COPY --from=deps /app/package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=deps --chmod=0755 /app/pkm /usr/local/bin/pkm
# An empty /data owned by nonroot, so that a fresh volume mounted there is writable.
COPY --from=deps --chown=65532:65532 /data /data
USER 65532:65532
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/pkm"]
CMD ["server"]
