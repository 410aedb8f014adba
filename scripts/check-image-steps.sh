#!/usr/bin/env bash
# The Dockerfile's steps, without Docker (no engine runs on CI): on a clean copy of the tree,
# build as the build stage does, install runtime dependencies as the deps stage does, assemble
# the runtime stage's /app, then run `pkm` through the same launcher the image uses: --version,
# and a server that answers /healthz. Catches a runtime import of a dev dependency, or a file
# the image lacks.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# COPY, as the Dockerfile's stages see the tree (the build context minus .dockerignore's).
mkdir -p "$work/build" "$work/deps" "$work/app"
cp "$repo/package.json" "$repo/package-lock.json" "$repo/tsconfig.json" "$repo/tsconfig.build.json" "$work/build/"
cp -r "$repo/src" "$work/build/src"
cp "$repo/package.json" "$repo/package-lock.json" "$work/deps/"

echo "== build stage: npm ci, npm run build"
(cd "$work/build" && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
echo "== deps stage: npm ci --omit=dev"
(cd "$work/deps" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
# The launcher, as the image writes it, pointing at this /app instead of /app.
printf '#!%s\nimport("%s/dist/cli.js");\n' "$(command -v node)" "$work/app" > "$work/pkm"
chmod 0755 "$work/pkm"

echo "== runtime stage: package.json, node_modules (runtime only), dist"
cp "$work/deps/package.json" "$work/app/"
cp -r "$work/deps/node_modules" "$work/app/node_modules"
cp -r "$work/build/dist" "$work/app/dist"

echo "== pkm --version: $("$work/pkm" --version)"
"$work/pkm" server --data-dir "$work/data" --listen 127.0.0.1:0 > "$work/server.log" &
server_pid=$!
url=""
for _ in $(seq 1 100); do
  url="$(grep -o '"url":"[^"]*"' "$work/server.log" | head -1 | cut -d'"' -f4 || true)"
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "the server did not start:"; cat "$work/server.log"; exit 1; }
node -e 'fetch(process.argv[1]).then(async (r) => { const t = await r.text(); console.log(`== GET /healthz: ${r.status} ${t}`); process.exit(r.ok ? 0 : 1); })' "$url/healthz"
kill "$server_pid"
wait "$server_pid" || true
server_pid=""
echo "== the image's steps work: runtime deps only ($(ls "$work/app/node_modules" | wc -l) packages)"
