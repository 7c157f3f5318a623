# One image for every Baton process; the command picks the process:
#   node dist/services/metadata/main.js   node dist/services/results/main.js
#   node dist/services/scheduler/main.js  node dist/agent/main.js
#   bin/baton (the CLI)
# Each takes --config FILE (or BATON_CONFIG), BATON_<KEY> variables and --<key> flags (deploy/README.md).
# Build: docker build -t baton .   (deploy/compose.yaml and deploy/kubernetes use it)

# Stage 1: install every dependency, generate the proto code, compile, write the reflection
# descriptors (npm run build), then drop the dev dependencies (buf, TypeScript, eslint) and the
# test code (test/, bench/ and every *.test.js: tests import helpers that are not shipped).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY buf.yaml buf.gen.yaml tsconfig.json ./
COPY proto proto
COPY lib lib
COPY services services
COPY agent agent
COPY cli cli
COPY scripts scripts
COPY test test
COPY bench bench
RUN npm run build && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf dist/test dist/bench && find dist \( -name '*.map' -o -name '*.test.js' \) -delete

# Stage 2: the runtime. /bin/sh stays: agents run each task under a small sh wrapper.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY bin bin
COPY examples examples
# The services, the CLI and the one-shot certificate step run as `baton` (uid 10001): none of
# them needs root. /etc/baton/pki belongs to it so that a fresh volume mounted there (compose's
# `pki`) starts writable by it. Agents run tasks as root on purpose (tasks manage the node;
# run-as needs it): their compose service and DaemonSet set user 0 explicitly.
RUN groupadd --system --gid 10001 baton \
 && useradd --system --uid 10001 --gid baton --home-dir /var/lib/baton --no-create-home --shell /usr/sbin/nologin baton \
 && mkdir -p /etc/baton/pki /var/lib/baton && chown baton:baton /etc/baton/pki && chmod 0700 /etc/baton/pki
USER 10001:10001
# Services listen on 7410 (metadata), 7411 (scheduler), 7412 (results); agents only dial out.
EXPOSE 7410 7411 7412
CMD ["node", "bin/baton", "--help"]
