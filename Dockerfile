# One image for every `pkm` command (server now; client and agent as they land).
# Build: docker build -t cluster-pk-manager .
# Run:   docker run -v pkm-data:/data -p 8000:8000 cluster-pk-manager server --listen 0.0.0.0:8000

FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20.20.2-bookworm-slim
ENV NODE_ENV=production \
    PKM_DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN ln -s /app/dist/cli.js /usr/local/bin/pkm \
 && chmod 0755 /app/dist/cli.js \
 && mkdir -p /data && chown 1000:1000 /data && chmod 0700 /data
# The image's unprivileged `node` user.
USER 1000:1000
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["pkm"]
CMD ["server"]
