#!/usr/bin/env node
// Checks grpc.health.v1.Health/Check on one or more host:port addresses and exits non-zero unless
// every one answers SERVING. Used by the image's HEALTHCHECK and by the chart's `helm test` pod.
// It needs only @grpc/grpc-js from the image (no generated code): the request is an empty
// HealthCheckRequest, and the reply's status is field 1 (varint), SERVING = 1.
//
//   node grpc-health-check.cjs [--timeout-ms N] [--tls ca,cert,key] host:port...
'use strict';
const fs = require('node:fs');
const grpc = require('@grpc/grpc-js');

const args = process.argv.slice(2);
let timeoutMs = 3000;
let credentials = grpc.credentials.createInsecure();
const targets = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--timeout-ms') timeoutMs = Number(args[++i]);
  else if (args[i] === '--tls') {
    const [ca, cert, key] = String(args[++i]).split(',');
    credentials = grpc.credentials.createSsl(fs.readFileSync(ca), key ? fs.readFileSync(key) : null, cert ? fs.readFileSync(cert) : null);
  } else targets.push(args[i]);
}
if (targets.length === 0 || !(timeoutMs > 0)) {
  console.error('usage: grpc-health-check.cjs [--timeout-ms N] [--tls ca,cert,key] host:port...');
  process.exit(2);
}

const STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

function decodeStatus(buf) {
  // HealthCheckResponse { ServingStatus status = 1; }: an absent field is the default, UNKNOWN.
  for (let i = 0; i < buf.length; ) {
    const tag = buf[i++];
    let value = 0;
    for (let shift = 0; i < buf.length; shift += 7) {
      const b = buf[i++];
      value |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) break;
    }
    if (tag === 0x08) return value;
    if ((tag & 0x07) !== 0) throw new Error(`unexpected wire type in HealthCheckResponse (tag ${tag})`);
  }
  return 0;
}

function check(target) {
  return new Promise((resolve) => {
    const client = new grpc.Client(target, credentials);
    const deadline = new Date(Date.now() + timeoutMs);
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      () => Buffer.alloc(0),
      (b) => b,
      Buffer.alloc(0),
      new grpc.Metadata(),
      { deadline },
      (err, reply) => {
        client.close();
        if (err) return resolve({ target, ok: false, detail: `${grpc.status[err.code] ?? err.code}: ${err.details}` });
        let status;
        try {
          status = decodeStatus(reply);
        } catch (e) {
          return resolve({ target, ok: false, detail: String(e.message) });
        }
        resolve({ target, ok: status === 1, detail: STATUS[status] ?? String(status) });
      },
    );
  });
}

Promise.all(targets.map(check)).then((results) => {
  for (const r of results) console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${r.target} ${r.detail}`);
  process.exit(results.every((r) => r.ok) ? 0 : 1);
});
