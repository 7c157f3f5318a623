#!/bin/sh
# The `baton` command as npm installs it (package.json "bin"): runs bin/baton with Node.
#
# A shell that sets NODE_EXTRA_CA_CERTS makes every Node process read Node's root certificates
# and that file as it starts, before any of its code runs: a large part of a short command's
# start-up. The CLI checks Baton's services with the CA it is given (tls-ca), so it needs the
# file only without one, and the processes it starts (`baton dev`) need it as it was. It is
# handed on in BATON_NODE_EXTRA_CA_CERTS instead: the CLI puts it back in its environment for
# those processes and adds the file to Node's roots itself where it checks a server without a
# tls-ca (lib/extra-ca-certs.ts). With OpenTelemetry export configured it stays: the exporter
# trusts servers through Node's own store.
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -z "${OTEL_EXPORTER_OTLP_ENDPOINT:-}${OTEL_EXPORTER_OTLP_TRACES_ENDPOINT:-}${OTEL_TRACES_EXPORTER:-}" ]; then
  BATON_NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS
  export BATON_NODE_EXTRA_CA_CERTS
  unset NODE_EXTRA_CA_CERTS
fi
# `npm link` and a global install reach this file through symbolic links.
self=$0
[ -L "$self" ] && self=$(readlink -f -- "$self")
case $self in */*) ;; *) self=./$self ;; esac
exec node "${self%/*}/baton" "$@"
