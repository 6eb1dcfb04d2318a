import { constants, createHash, createPrivateKey, type KeyObject, sign, verify, X509Certificate } from 'node:crypto';
import { invalidArgument } from '@fedmm/core';
import { canonicalJson, type JsonValue } from './canonical-json.js';
import type { AuditInput, AuditRecord } from './record.js';

type JsonObject = { readonly [key: string]: JsonValue };

/**
 * The terms a task's members agree to. The reward rule and access tiers are the valuation
 * library's RewardRule and AccessTierConfig; privacy budgets are the privacy service's per-task
 * and per-tenant (epsilon, delta). All of it is plain JSON so that it hashes canonically.
 */
export interface ConsortiumTerms {
  readonly task: string;
  /** Raised by every change; each change needs every member's new acceptance. */
  readonly version: number;
  readonly rewardRule: JsonObject;
  readonly accessTiers: JsonObject;
  readonly privacyBudgets: JsonObject;
  /** What the shared model and the updates may be used for, in words. */
  readonly dataUse: string;
}

/** A member's signed acceptance of one version of the terms. */
export interface TermsAcceptance {
  readonly task: string;
  readonly member: string;
  readonly termsVersion: number;
  readonly termsDigest: string;
  readonly acceptedAt: string;
  readonly algorithm: SignatureAlgorithm;
  /** base64 */
  readonly signature: string;
}

export type SignatureAlgorithm = 'ecdsa-sha256' | 'ed25519' | 'rsa-pss-sha256';

/** sha256 (hex) over the canonical JSON of the terms. */
export function termsDigest(terms: ConsortiumTerms): string {
  validateTerms(terms);
  return createHash('sha256').update(canonicalJson(terms), 'utf8').digest('hex');
}

/** Signs acceptance of the terms with the key of the member's client certificate. */
export function signAcceptance(
  terms: ConsortiumTerms,
  privateKeyPem: string | KeyObject,
  options: { readonly member: string; readonly acceptedAt?: Date },
): TermsAcceptance {
  const key = typeof privateKeyPem === 'string' ? createPrivateKey(privateKeyPem) : privateKeyPem;
  const algorithm = algorithmFor(key.asymmetricKeyType);
  const unsigned = {
    task: terms.task,
    member: options.member,
    termsVersion: terms.version,
    termsDigest: termsDigest(terms),
    acceptedAt: (options.acceptedAt ?? new Date()).toISOString(),
    algorithm,
  };
  const signature = sign(digestOf(algorithm), signedBytes(unsigned), signOptions(algorithm, key)).toString('base64');
  return { ...unsigned, signature };
}

/** The outcome of checking an acceptance. */
export type AcceptanceCheck = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * Checks that an acceptance is for exactly these terms and is signed by the certificate's key.
 * Binding the member id to the certificate (subject or SAN) is the PKI's job: pass `identity`
 * to have it compared here.
 */
export function verifyAcceptance(
  terms: ConsortiumTerms,
  acceptance: TermsAcceptance,
  certificatePem: string,
  options: { readonly identity?: (cert: X509Certificate) => string | undefined; readonly at?: Date } = {},
): AcceptanceCheck {
  if (acceptance.task !== terms.task) return { ok: false, reason: `acceptance is for task ${acceptance.task}, not ${terms.task}` };
  if (acceptance.termsVersion !== terms.version) {
    return { ok: false, reason: `acceptance is for terms version ${acceptance.termsVersion}; the current version is ${terms.version}` };
  }
  if (acceptance.termsDigest !== termsDigest(terms)) return { ok: false, reason: 'acceptance is for different terms (digest mismatch)' };
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certificatePem);
  } catch {
    return { ok: false, reason: 'the certificate is not a valid PEM X.509 certificate' };
  }
  const at = options.at ?? new Date(acceptance.acceptedAt);
  if (at < new Date(cert.validFrom) || at > new Date(cert.validTo)) {
    return { ok: false, reason: `the certificate was not valid at ${at.toISOString()}` };
  }
  if (options.identity) {
    const id = options.identity(cert);
    if (id !== acceptance.member) return { ok: false, reason: `the certificate identifies ${String(id)}, not ${acceptance.member}` };
  }
  const key = cert.publicKey;
  let expected: SignatureAlgorithm;
  try {
    expected = algorithmFor(key.asymmetricKeyType);
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  if (expected !== acceptance.algorithm) {
    return { ok: false, reason: `acceptance claims ${acceptance.algorithm} but the certificate holds a ${String(key.asymmetricKeyType)} key` };
  }
  const { signature, ...unsigned } = acceptance;
  const valid = verify(digestOf(expected), signedBytes(unsigned), signOptions(expected, key), Buffer.from(signature, 'base64'));
  return valid ? { ok: true } : { ok: false, reason: 'the signature does not verify with the certificate key' };
}

/** Members who have not accepted the current terms (acceptances of older versions do not count). */
export function membersMissingAcceptance(
  terms: ConsortiumTerms,
  members: readonly string[],
  acceptances: readonly Pick<TermsAcceptance, 'member' | 'termsVersion' | 'termsDigest' | 'task'>[],
): string[] {
  const digest = termsDigest(terms);
  const accepted = new Set(
    acceptances
      .filter((a) => a.task === terms.task && a.termsVersion === terms.version && a.termsDigest === digest)
      .map((a) => a.member),
  );
  return members.filter((m) => !accepted.has(m));
}

function signedBytes(unsigned: Omit<TermsAcceptance, 'signature'>): Buffer {
  return Buffer.from(canonicalJson({ purpose: 'fedmm.terms.acceptance/v1', ...unsigned }), 'utf8');
}

function algorithmFor(type: string | undefined): SignatureAlgorithm {
  switch (type) {
    case 'ec':
      return 'ecdsa-sha256';
    case 'ed25519':
      return 'ed25519';
    case 'rsa':
    case 'rsa-pss':
      return 'rsa-pss-sha256';
    default:
      throw invalidArgument(`keys of type ${String(type)} cannot sign terms; use an EC P-256, Ed25519 or RSA key`);
  }
}

function digestOf(algorithm: SignatureAlgorithm): string | null {
  return algorithm === 'ed25519' ? null : 'sha256';
}

function signOptions(algorithm: SignatureAlgorithm, key: KeyObject) {
  return algorithm === 'rsa-pss-sha256'
    ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }
    : { key };
}

function validateTerms(terms: ConsortiumTerms): void {
  if (!Number.isInteger(terms.version) || terms.version < 1) throw invalidArgument(`terms version must be an integer >= 1, got ${terms.version}`);
  if (typeof terms.task !== 'string' || terms.task.length === 0) throw invalidArgument('terms need the task id');
  if (typeof terms.dataUse !== 'string' || terms.dataUse.trim().length === 0) {
    throw invalidArgument('terms need a data-use statement saying what the model and updates may be used for');
  }
}

/** The audit record that puts terms on the chain (at task creation and at every change). */
export function termsRecordedInput(terms: ConsortiumTerms, actor: string): AuditInput {
  return { task: terms.task, kind: 'terms.recorded', actor, payload: { terms: terms as unknown as JsonObject, digest: termsDigest(terms) } };
}

/** The audit record of a member's verified acceptance. */
export function termsAcceptedInput(acceptance: TermsAcceptance): AuditInput {
  return { task: acceptance.task, kind: 'terms.accepted', actor: acceptance.member, payload: { acceptance: acceptance as unknown as JsonObject } };
}

/** The terms in force and who has accepted them, replayed from a task's (verified) chain. */
export function termsStateFromChain(records: readonly AuditRecord[]): {
  readonly terms: ConsortiumTerms | undefined;
  readonly accepted: readonly string[];
} {
  let terms: ConsortiumTerms | undefined;
  let acceptances: TermsAcceptance[] = [];
  for (const r of records) {
    if (r.kind === 'terms.recorded') {
      terms = r.payload['terms'] as unknown as ConsortiumTerms;
      acceptances = [];
    } else if (r.kind === 'terms.accepted') {
      acceptances.push(r.payload['acceptance'] as unknown as TermsAcceptance);
    }
  }
  if (!terms) return { terms, accepted: [] };
  const members = [...new Set(acceptances.map((a) => a.member))];
  const missing = new Set(membersMissingAcceptance(terms, members, acceptances));
  return { terms, accepted: members.filter((m) => !missing.has(m)) };
}
