#!/usr/bin/env node
// gRPC health probe for Kubernetes exec probes: the kubelet's own `grpc` probe speaks no TLS, and
// Baton's services serve mutual TLS in the cluster (deploy/kubernetes). Exits 0 when
// grpc.health.v1.Health/Check answers SERVING, 1 otherwise, with one line saying why.
//   node deploy/health-probe.mjs ADDRESS SERVICE [TLS_DIR SERVER_NAME]
// TLS_DIR holds ca.crt, tls.crt and tls.key (a kubernetes.io/tls Secret plus its CA); SERVER_NAME
// is a name in the server's certificate (the probe dials 127.0.0.1, which the certificate lacks).
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const { makeGenericClientConstructor, credentials } = require('@grpc/grpc-js');
const { service: healthService } = require('grpc-health-check');
const { channelCredentials } = require('../dist/lib/tls.js');

/** Most time the check may take, in ms; below the probes' timeoutSeconds. */
const PROBE_DEADLINE_MS = 4000;

const [address, service = '', tlsDir, serverName] = process.argv.slice(2);
if (!address) {
  process.stderr.write('usage: health-probe.mjs ADDRESS SERVICE [TLS_DIR SERVER_NAME]\n');
  process.exit(2);
}
const creds = tlsDir
  ? channelCredentials({ ca: join(tlsDir, 'ca.crt'), cert: join(tlsDir, 'tls.crt'), key: join(tlsDir, 'tls.key') })
  : credentials.createInsecure();
const options = serverName ? { 'grpc.ssl_target_name_override': serverName, 'grpc.default_authority': serverName } : {};
const Health = makeGenericClientConstructor(healthService, 'Health');
const client = new Health(address, creds, options);
client.check({ service }, { deadline: Date.now() + PROBE_DEADLINE_MS }, (err, res) => {
  client.close();
  if (err) {
    process.stderr.write(`health ${address} ${service || '(server)'}: ${err.details || err.message}\n`);
    process.exit(1);
  }
  if (res.status !== 'SERVING') {
    process.stderr.write(`health ${address} ${service || '(server)'}: ${res.status}\n`);
    process.exit(1);
  }
  process.exit(0);
});
