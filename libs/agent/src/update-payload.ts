import { createLayout, sha256Hex, type LayoutTensor, type TensorLayout } from '@fedmm/tensor';
import { tensor as tpb } from '@fedmm/proto';
import { FedmmError } from '@fedmm/core';

/** One tensor of an update, as float32 values. */
export interface UpdateTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
  /** "image", "text", "sensor", or absent for shared tensors. */
  readonly modality?: string;
}

/** An update ready for the wire: the layout (sorted by name) and the tensors' little-endian F32 bytes concatenated in that order. */
export interface UpdatePayload {
  readonly layout: TensorLayout;
  readonly bytes: Uint8Array;
  readonly sha256: string;
}

/** Serialises update tensors into the payload the gateway expects (F32, layout order). */
export function buildUpdatePayload(tensors: readonly UpdateTensor[]): UpdatePayload {
  const specs: LayoutTensor[] = tensors.map((t) => ({ name: t.name, dtype: 'F32', shape: t.shape, ...(t.modality ? { modality: t.modality } : {}) }));
  const layout = createLayout(specs);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const bytes = new Uint8Array(layout.totalBytes);
  for (const e of layout.entries) {
    const t = byName.get(e.name)!;
    if (t.data.length !== e.length) {
      throw new FedmmError('INVALID_ARGUMENT', `update tensor ${e.name} has ${t.data.length} values but its shape [${e.shape.join(', ')}] needs ${e.length}`);
    }
    for (const v of t.data) {
      if (!Number.isFinite(v)) throw new FedmmError('INVALID_ARGUMENT', `update tensor ${e.name} holds a non-finite value; training diverged — lower the learning rate or enable clipping`);
    }
    // Float32Array is little-endian on every platform Node supports.
    bytes.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), e.byteOffset);
  }
  return { layout, bytes, sha256: sha256Hex(bytes) };
}

const DTYPE: Record<string, tpb.DType> = { F32: tpb.DType.D_TYPE_F32, F16: tpb.DType.D_TYPE_F16, BF16: tpb.DType.D_TYPE_BF16, I8: tpb.DType.D_TYPE_I8 };

/** The layout as the gRPC API carries it. */
export function layoutToProto(layout: TensorLayout): tpb.TensorLayout {
  return tpb.TensorLayout.fromPartial({
    fingerprint: layout.fingerprint,
    tensors: layout.entries.map((e) => ({ name: e.name, dtype: DTYPE[e.dtype] ?? tpb.DType.D_TYPE_F32, shape: [...e.shape], modality: e.modality ?? '' })),
  });
}
