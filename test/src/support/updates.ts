import { Topics, type Bus } from '@fedmm/bus';
import { CHUNK_HEADERS, RECORD_KIND_HEADER, createLayout, encodeUpdateChunk, encodeVerdict, shardAt, shardCount, sha256Hex } from '@fedmm/tensor';

/**
 * Publishes a client's F32 update to fedmm.updates exactly as the gateway does after it validated
 * an upload: chunks per shard, then one accept verdict per shard. `update` may hold a subset of
 * the round's tensors.
 */
export async function publishUpdateAsGateway(bus: Bus, opts: {
  task: string; round: number; attempt: number; client: string; numExamples: number;
  roundLayout: { name: string; shape: number[]; modality?: string }[]; shardElements: number;
  update: Map<string, Float32Array>; accept?: boolean; duplicate?: boolean;
}): Promise<{ sha256: string; norm: number; shards: number }> {
  const layout = createLayout(opts.roundLayout.map((t) => ({ name: t.name, dtype: 'F32', shape: t.shape, ...(t.modality ? { modality: t.modality } : {}) })));
  const parts: Buffer[] = [];
  let sq = 0;
  for (const e of layout.entries) {
    const v = opts.update.get(e.name);
    if (!v) continue;
    parts.push(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
    for (const x of v) sq += x * x;
  }
  const sha = sha256Hex(Buffer.concat(parts));
  const norm = Math.sqrt(sq);
  const touched: { shard: number; seqCount: number }[] = [];
  const n = shardCount(layout, opts.shardElements);
  for (let s = 0; s < n; s++) {
    const shard = shardAt(layout, s, opts.shardElements);
    let seq = 0;
    const seqCount = shard.pieces.filter((p) => opts.update.has(p.name)).length;
    const msgs = [];
    for (const piece of shard.pieces) {
      const v = opts.update.get(piece.name);
      if (!v) continue;
      const rec = encodeUpdateChunk({
        task: opts.task, round: opts.round, client: opts.client, shard: s, seq, seqCount,
        layoutFingerprint: layout.fingerprint, dtype: 'F32', elementOffset: piece.flatStart,
        values: v.slice(piece.start, piece.end), numExamples: opts.numExamples, updateSha256: sha,
      });
      msgs.push({ key: rec.key, value: rec.value, headers: { ...rec.headers, [RECORD_KIND_HEADER]: 'chunk' } });
      seq++;
    }
    if (msgs.length === 0) continue;
    await bus.publish(Topics.updates, opts.duplicate ? [...msgs, ...msgs] : msgs);
    touched.push({ shard: s, seqCount: seq });
  }
  for (const t of touched) {
    const v = encodeVerdict({ task: opts.task, round: opts.round, attempt: opts.attempt, client: opts.client, shard: t.shard, updateSha256: sha, accept: opts.accept ?? true, numExamples: opts.numExamples, norm, seqCount: t.seqCount });
    await bus.publish(Topics.updates, [{ key: v.key, value: v.value, headers: v.headers }]);
  }
  void CHUNK_HEADERS;
  return { sha256: sha, norm, shards: touched.length };
}
