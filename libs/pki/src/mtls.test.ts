import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import {
  Client,
  credentials,
  Server,
  ServerCredentials,
  status,
  type ChannelCredentials,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServiceDefinition,
  type ServiceError,
} from '@grpc/grpc-js';
import { createCa, issueClientCert, issueServerCert, type CertificateAndKey } from './certificates.js';
import { clientCredentials, readClientTlsFiles, serverCredentials } from './credentials.js';
import { tenantFromCall } from './identity.js';
import { initPkiDir } from './pki-dir.js';

const PATH = '/fedmm.test.Identity/WhoAmI';
const identity = (b: Buffer): Buffer => b;
const WhoAmI: ServiceDefinition = {
  whoAmI: {
    path: PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

interface TestServer {
  port: number;
  /** Tenants the handler saw, in call order; a refused connection never reaches it. */
  seen: string[];
  close(): void;
}

async function startServer(creds: ServerCredentials): Promise<TestServer> {
  const server = new Server();
  const seen: string[] = [];
  server.addService(WhoAmI, {
    whoAmI: (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => {
      try {
        const tenant = tenantFromCall(call);
        seen.push(tenant);
        cb(null, Buffer.from(tenant));
      } catch (e) {
        seen.push(`refused: ${(e as Error).message}`);
        cb({ code: status.UNAUTHENTICATED, details: (e as Error).message });
      }
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
  return { port, seen, close: () => server.forceShutdown() };
}

async function whoAmI(port: number, creds: ChannelCredentials, options: Record<string, string> = {}): Promise<{ tenant?: string; error?: ServiceError }> {
  const client = new Client(`127.0.0.1:${port}`, creds, options);
  try {
    return await new Promise((resolve) => {
      client.makeUnaryRequest(PATH, identity, identity, Buffer.alloc(0), { deadline: Date.now() + 10_000 }, (error, value) => {
        resolve(error ? { error } : { tenant: value?.toString() ?? '' });
      });
    });
  } finally {
    client.close();
  }
}

describe('mutual TLS over loopback', () => {
  let dir: string;
  let ca: CertificateAndKey;
  let server: TestServer;
  let acme: CertificateAndKey;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedmm-pki-mtls-'));
    await initPkiDir(dir, { tenants: ['acme'] });
    const m = readClientTlsFiles(dir, 'acme');
    ca = { certPem: m.caPem, keyPem: '' };
    acme = { certPem: m.certPem, keyPem: m.keyPem };
    server = await startServer(serverCredentials(dir));
  });
  after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a client certificate from the CA connects and the handler reads its tenant from the call', async () => {
    const before = server.seen.length;
    const r = await whoAmI(server.port, clientCredentials({ caPem: ca.certPem, ...acme }));
    assert.equal(r.error, undefined, r.error?.message);
    assert.equal(r.tenant, 'acme');
    assert.deepEqual(server.seen.slice(before), ['acme']);
  });

  test('the server certificate validates for 127.0.0.1 and for localhost, and not for another name', async () => {
    const creds = clientCredentials({ caPem: ca.certPem, ...acme });
    assert.equal((await whoAmI(server.port, creds)).tenant, 'acme'); // dialled by IP: checked against the IP SAN
    assert.equal((await whoAmI(server.port, creds, { 'grpc.ssl_target_name_override': 'localhost' })).tenant, 'acme');
    const wrong = await whoAmI(server.port, creds, { 'grpc.ssl_target_name_override': 'not-the-gateway.example' });
    assert.equal(wrong.error?.code, status.UNAVAILABLE);
  });

  test('a client without a certificate is refused before any handler runs', async () => {
    const before = server.seen.length;
    const r = await whoAmI(server.port, credentials.createSsl(Buffer.from(ca.certPem)));
    assert.equal(r.error?.code, status.UNAVAILABLE, `expected the handshake to fail, got ${r.error?.message ?? `tenant ${r.tenant}`}`);
    assert.equal(server.seen.length, before);
  });

  test('a client certificate from another CA is refused', async () => {
    const otherCa = await createCa({ commonName: 'someone else' });
    const forged = await issueClientCert({ ca: otherCa, tenant: 'acme' });
    const before = server.seen.length;
    const r = await whoAmI(server.port, credentials.createSsl(Buffer.from(ca.certPem), Buffer.from(forged.keyPem), Buffer.from(forged.certPem)));
    assert.equal(r.error?.code, status.UNAVAILABLE);
    assert.equal(server.seen.length, before);
  });

  test('an expired client certificate is refused', async () => {
    const caFull = { certPem: ca.certPem, keyPem: readFileSync(join(dir, 'ca.key'), 'utf8') };
    const expired = await issueClientCert({ ca: caFull, tenant: 'acme', notBefore: new Date(Date.now() - 3 * 86_400_000), validityDays: 1 });
    const before = server.seen.length;
    const r = await whoAmI(server.port, clientCredentials({ caPem: ca.certPem, ...expired }));
    assert.equal(r.error?.code, status.UNAVAILABLE);
    assert.equal(server.seen.length, before);
  });

  test('the server certificate cannot stand in for a client certificate (no clientAuth usage)', async () => {
    const m = serverMaterial(dir);
    const before = server.seen.length;
    const r = await whoAmI(server.port, credentials.createSsl(Buffer.from(ca.certPem), Buffer.from(m.keyPem), Buffer.from(m.certPem)));
    assert.equal(r.error?.code, status.UNAVAILABLE);
    assert.equal(server.seen.length, before);
  });

  test('during a CA rotation a server trusting a bundle of old and new CA accepts tenants of both', async () => {
    const oldCa = { certPem: ca.certPem, keyPem: readFileSync(join(dir, 'ca.key'), 'utf8') };
    const newCa = await createCa({ commonName: 'fedmm CA 2' });
    const rotating = await startServer(serverCredentials({ caPem: oldCa.certPem + newCa.certPem, ...serverMaterial(dir) }));
    try {
      const globex = await issueClientCert({ ca: newCa, tenant: 'globex' });
      assert.equal((await whoAmI(rotating.port, clientCredentials({ caPem: oldCa.certPem, ...acme }))).tenant, 'acme');
      assert.equal((await whoAmI(rotating.port, clientCredentials({ caPem: oldCa.certPem, ...globex }))).tenant, 'globex');
    } finally {
      rotating.close();
    }
  });

  test('a client refuses a server whose certificate comes from another CA', async () => {
    const otherCa = await createCa({ commonName: 'impostor' });
    const impostorCert = await issueServerCert({ ca: otherCa, commonName: 'impostor', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    const impostor = await startServer(serverCredentials({ caPem: ca.certPem, ...impostorCert }));
    try {
      const r = await whoAmI(impostor.port, clientCredentials({ caPem: ca.certPem, ...acme }));
      assert.equal(r.error?.code, status.UNAVAILABLE);
      assert.deepEqual(impostor.seen, []);
    } finally {
      impostor.close();
    }
  });
});

describe('client certificate verification gives the expected reason', () => {
  // grpc-js reports every refused handshake as UNAVAILABLE, and a node TLS server that rejects a client drops it
  // without saying why; a server that asks for a certificate but does not reject records the verdict instead.
  async function verificationError(server: CertificateAndKey & { caPem: string }, client: CertificateAndKey): Promise<string | undefined> {
    const srv = createServer({ ca: server.caPem, cert: server.certPem, key: server.keyPem, requestCert: true, rejectUnauthorized: false });
    const verdict = new Promise<string | undefined>((resolve, reject) => {
      srv.once('secureConnection', (s: TLSSocket) => {
        resolve(s.authorized ? undefined : String(s.authorizationError));
        s.destroy();
      });
      srv.once('tlsClientError', reject);
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const port = (srv.address() as { port: number }).port;
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: server.caPem, cert: client.certPem, key: client.keyPem });
    socket.on('error', () => undefined);
    try {
      return await verdict;
    } finally {
      socket.destroy();
      srv.close();
    }
  }

  test('expired, foreign-CA and server-only certificates each fail verification with their own code', async () => {
    const ca = await createCa({ commonName: 'test CA' });
    const srv = { caPem: ca.certPem, ...(await issueServerCert({ ca, commonName: 'gw', dnsNames: ['localhost'] })) };
    assert.equal(await verificationError(srv, await issueClientCert({ ca, tenant: 'acme' })), undefined);
    const expired = await issueClientCert({ ca, tenant: 'acme', notBefore: new Date(Date.now() - 3 * 86_400_000), validityDays: 1 });
    assert.equal(await verificationError(srv, expired), 'CERT_HAS_EXPIRED');
    const foreign = await issueClientCert({ ca: await createCa({ commonName: 'other' }), tenant: 'acme' });
    assert.equal(await verificationError(srv, foreign), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    assert.equal(await verificationError(srv, srv), 'INVALID_PURPOSE');
  });
});

describe('tenantFromCall without client authentication', () => {
  test('a plaintext call is refused with UNAUTHENTICATED', async () => {
    const server = await startServer(ServerCredentials.createInsecure());
    try {
      const r = await whoAmI(server.port, credentials.createInsecure());
      assert.equal(r.error?.code, status.UNAUTHENTICATED);
      assert.match(r.error?.details ?? '', /without a verified client certificate/);
    } finally {
      server.close();
    }
  });

  test('a TLS call on a server that does not ask for client certificates is refused with UNAUTHENTICATED', async () => {
    const ca = await createCa({ commonName: 'test CA' });
    const s = await issueServerCert({ ca, commonName: 'gw', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    const server = await startServer(ServerCredentials.createSsl(Buffer.from(ca.certPem), [{ cert_chain: Buffer.from(s.certPem), private_key: Buffer.from(s.keyPem) }], false));
    try {
      const r = await whoAmI(server.port, credentials.createSsl(Buffer.from(ca.certPem)));
      assert.equal(r.error?.code, status.UNAUTHENTICATED);
    } finally {
      server.close();
    }
  });
});

function serverMaterial(dir: string): CertificateAndKey {
  return { certPem: readFileSync(join(dir, 'server.crt'), 'utf8'), keyPem: readFileSync(join(dir, 'server.key'), 'utf8') };
}
