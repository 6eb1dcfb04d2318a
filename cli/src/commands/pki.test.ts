import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { UsageError } from '../command.js';
import { runPki } from './pki.js';

const root = mkdtempSync(join(tmpdir(), 'fedmm-cli-pki-'));
after(() => rmSync(root, { recursive: true, force: true }));

async function run(...argv: string[]): Promise<{ code: number; stdout: string }> {
  let stdout = '';
  const code = await runPki(argv, (text) => {
    stdout += text;
  });
  return { code, stdout };
}

test('fedmm pki init, issue-client and show write and describe a PKI directory', async () => {
  const dir = join(root, 'pki');
  const init = await run('init', '--dir', dir, '--tenant', 'acme', '--server-name', 'gw.example.com');
  assert.equal(init.code, 0);
  assert.match(init.stdout, /created {3}ca\.key +\(mode 0600\)/);
  assert.match(init.stdout, /FEDMM_TLS_CA=\S*ca\.crt FEDMM_TLS_CERT=\S*server\.crt FEDMM_TLS_KEY=\S*server\.key/);
  assert.match(init.stdout, /Tenant acme: CA \S*clients\/ca\.crt, certificate \S*clients\/acme\.crt/);
  for (const f of ['ca.crt', 'ca.key', 'server.crt', 'server.key', 'clients/ca.crt', 'clients/acme.crt', 'clients/acme.key']) assert.ok(existsSync(join(dir, f)), f);

  const again = await run('init', '--dir', dir);
  assert.doesNotMatch(again.stdout, /created|replaced/);

  const issued = await run('issue-client', '--dir', dir, '--tenant', 'globex', '--days', '30');
  assert.match(issued.stdout, /created {3}clients\/globex\.crt/);

  const show = await run('show', '--dir', dir);
  assert.match(show.stdout, /server\.crt {2}\[valid\]\n {2}subject {2}CN=fedmm gateway\n {2}issuer {3}CN=fedmm development CA\n {2}SAN {6}DNS:localhost, DNS:gw\.example\.com/);
  assert.match(show.stdout, /clients\/globex\.crt {2}\[valid\][\s\S]*?tenant {3}globex\n {2}valid .*\((29|30) days left\)/);
});

test('fedmm pki rejects malformed invocations with usage errors', async () => {
  await assert.rejects(run(), UsageError);
  await assert.rejects(run('renew'), /unknown pki action "renew"/);
  await assert.rejects(run('issue-client', '--dir', root), /exactly one tenant/);
  await assert.rejects(run('issue-client', '--dir', root, '--tenant', 'acme', '--days', 'soon'), /--days must be a positive number/);
  await assert.rejects(run('show', '--tenant', 'acme'), /show takes only --dir/);
});
