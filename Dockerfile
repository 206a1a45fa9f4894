# fedgate container image. No build step: Node 24 runs the TypeScript sources
# directly (type stripping), so one stage is enough.
#
#   docker build -t fedgate .
#   docker run -p 8080:8080 -e FEDGATE_CONFIG=/etc/fedgate/fedgate.yaml \
#     -e REDIS_URL=redis://redis:6379 \
#     -v "$PWD/fedgate.yaml:/etc/fedgate/fedgate.yaml:ro" \
#     -v "$PWD/fedgate-policies:/etc/fedgate/policies:ro" -v fedgate-keys:/app/keys fedgate
#
# NODE_ENV=production: fedgate refuses to start without FEDGATE_CONFIG (it never
# runs the public demo realm in a container). See docker-compose.yml.
FROM node:24-bookworm-slim

ENV NODE_ENV=production
WORKDIR /app

# Production dependencies only. The pinned `node` devDependency is left out:
# the image's own Node 24 runs fedgate and the npm scripts.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
  && npm cache clean --force

COPY src ./src
# policies/ holds the Casbin model (read by the decision engine) and the demo
# realm's policy seed; a deployment seeds its own (policies.dir, see
# docs/example-policies and docker-compose.yml).
COPY policies ./policies/

# keys/ holds the signing and cookie keys: generated at first start, rotated
# with `npm run keys -- rotate`. Mount a volume here, shared by every replica;
# it must be writable by the `node` user (uid 1000).
RUN mkdir -p keys policies \
  && chown node:node keys \
  && chmod 0700 keys

USER node

EXPOSE 8080

# Liveness only (/healthz does not touch Redis); orchestrators should use
# /readyz for readiness.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# node directly (not npm start) so SIGTERM reaches fedgate for a graceful shutdown.
CMD ["node", "src/main.ts"]
