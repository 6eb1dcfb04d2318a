import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Store } from './port.js';
import { updateJson } from './json.js';

export interface StoreHarness {
  /** Opens a store (a new connection or handle each time). */
  open(): Promise<Store>;
  /** Brings the backing server or file down hard and up again (data must survive). */
  restart(): Promise<void>;
}

/** The behaviour every store adapter must have, run against each adapter on its real backend. */
export function runStoreContract(name: string, harness: StoreHarness): void {
  describe(`store contract: ${name}`, () => {
    let store: Store;
    let ns: string;
    before(async () => {
      store = await harness.open();
      ns = `fedmm:contract:${randomUUID().slice(0, 8)}:`;
    });
    after(async () => {
      await store.close();
    });

    test('get, put, delete with increasing versions', async () => {
      const k = ns + 'a';
      assert.equal(await store.get(k), undefined);
      const v1 = await store.put(k, 'one');
      const v2 = await store.put(k, 'two');
      assert.ok(v1 > 0 && v2 > v1);
      assert.deepEqual(await store.get(k), { key: k, value: 'two', version: v2 });
      assert.equal(await store.delete(k), true);
      assert.equal(await store.delete(k), false);
      assert.equal(await store.get(k), undefined);
      const v3 = await store.put(k, 'three');
      assert.ok(v3 > v2, 'a re-created key never reuses an old version');
    });

    test('compare-and-set writes only on the expected version', async () => {
      const k = ns + 'cas';
      const v1 = await store.compareAndSet(k, 0, 'created');
      assert.ok(v1);
      assert.equal(await store.compareAndSet(k, 0, 'again'), undefined, 'create-if-absent fails when present');
      assert.equal(await store.compareAndSet(k, v1 + 1000, 'stale'), undefined);
      const v2 = await store.compareAndSet(k, v1, 'updated');
      assert.ok(v2 && v2 > v1);
      assert.equal((await store.get(k))?.value, 'updated');
    });

    test('50 concurrent compare-and-set increments give exactly 50', async () => {
      const k = ns + 'counter';
      const clients = await Promise.all([store, await harness.open(), await harness.open()]);
      await Promise.all(Array.from({ length: 50 }, (_, i) =>
        updateJson<number>(clients[i % clients.length]!, k, (cur) => (cur ?? 0) + 1)));
      assert.equal(JSON.parse((await store.get(k))!.value), 50);
      await Promise.all(clients.slice(1).map((c) => c.close()));
    });

    test('increment is atomic under concurrency', async () => {
      const k = ns + 'incr';
      const other = await harness.open();
      await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? store : other).increment(k, 0.5)));
      assert.equal(Number((await store.get(k))!.value), 20);
      await other.close();
    });

    test('atomic batch: all checks hold and all writes apply, or nothing changes', async () => {
      const a = ns + 'batch:a';
      const b = ns + 'batch:b';
      const va = await store.put(a, '1');
      assert.equal(await store.atomic([{ key: a, version: va }, { key: b, version: 0 }], [{ key: a, value: '2' }, { key: b, value: 'x' }]), true);
      assert.equal((await store.get(a))?.value, '2');
      assert.equal((await store.get(b))?.value, 'x');
      assert.equal(await store.atomic([{ key: a, version: va }], [{ key: a, value: '3' }, { key: b, value: null }]), false);
      assert.equal((await store.get(a))?.value, '2', 'a failed batch writes nothing');
      assert.equal((await store.get(b))?.value, 'x');
      const cur = (await store.get(a))!.version;
      assert.equal(await store.atomic([{ key: a, version: cur }], [{ key: b, value: null }]), true);
      assert.equal(await store.get(b), undefined);
    });

    test('list by prefix returns sorted entries under the prefix only', async () => {
      await store.put(ns + 'list:b', 'B');
      await store.put(ns + 'list:a', 'A');
      await store.put(ns + 'list:c*', 'C');
      await store.put(ns + 'listing', 'no');
      const got = await store.list(ns + 'list:');
      assert.deepEqual(got.map((e) => [e.key.slice(ns.length), e.value]), [['list:a', 'A'], ['list:b', 'B'], ['list:c*', 'C']]);
      assert.deepEqual((await store.list(ns + 'list:', 2)).length, 2);
    });

    test('data survives a hard restart of the backend', async () => {
      const k = ns + 'durable';
      const v = await store.put(k, 'kept');
      await store.close();
      await harness.restart();
      store = await harness.open();
      const e = await store.get(k);
      assert.deepEqual(e, { key: k, value: 'kept', version: v });
      const v2 = await store.put(k, 'after');
      assert.ok(v2 > v, 'versions keep increasing after a restart');
    });
  });
}
