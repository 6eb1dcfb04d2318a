export type ModelKind = 'base' | 'adapter';
export type Stage = 'candidate' | 'production' | 'archived';

export interface PrivacyInfo {
  mode: string;
  noiseMultiplier: number;
  clipNorm: number;
  delta: number;
  epsilonSpent: number;
  secureAggregation: boolean;
}

export interface LineageInfo {
  taskId: string;
  round: number;
  contributingClients: string[];
  strategy: string;
  privacy?: PrivacyInfo;
  parentVersionId: string;
}

export interface LayoutInfo {
  tensors: { name: string; dtype: string; shape: number[]; modality?: string; scale?: number }[];
  fingerprint: string;
}

export interface ModelRecord {
  modelId: string;
  description: string;
  configJson: string;
  createdAt: number;
}

export interface VersionRecord {
  versionId: string;
  modelId: string;
  number: number;
  kind: ModelKind;
  parentVersionId: string;
  lineage?: LineageInfo;
  metrics: Record<string, number>;
  artifactSha256: string;
  artifactSize: number;
  stage: Stage;
  createdAt: number;
  layout: LayoutInfo;
}

export interface AccessRuleRecord {
  modelId: string;
  tenant: string;
  /** A tenant may download an adapter version only this many versions after it was published. */
  versionDelayRounds: number;
  denied: boolean;
  tier: string;
}

export interface NewVersion {
  modelId: string;
  kind: ModelKind;
  parentVersionId: string;
  lineage?: LineageInfo;
  metrics: Record<string, number>;
  artifactSha256: string;
  artifactSize: number;
}

/** A round's version, assembled from the shards its workers staged. */
export interface NewRoundVersion {
  modelId: string;
  parentVersionId: string;
  taskId: string;
  round: number;
  attempt: number;
  numShards: number;
  /** The round's tensors, stored as F32; sorted by name and flattened, the shards cover them in index order. */
  tensors: { name: string; shape: number[]; modality?: string }[];
  lineage?: LineageInfo;
  metrics: Record<string, number>;
}
