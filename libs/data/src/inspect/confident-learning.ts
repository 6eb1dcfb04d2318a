/** A sample whose given label the probabilities confidently disagree with. */
export interface LabelIssue {
  /** Row in the input arrays. */
  readonly index: number;
  readonly given: number;
  readonly suggested: number;
  /** Probability of the given label. */
  readonly selfConfidence: number;
  /** Probability of the suggested label. */
  readonly suggestedConfidence: number;
}

export interface ConfidentLearningResult {
  /** Per-class threshold: mean predicted probability of the class over samples labelled with it. */
  readonly thresholds: Float64Array;
  /** Issues, most confident disagreement first. */
  readonly issues: LabelIssue[];
  /** confidentJoint[given * K + true]: counts of samples per (given, confidently predicted) pair. */
  readonly confidentJoint: Int32Array;
}

/**
 * Confident learning (Northcutt, Jiang, Chuang 2021): per-class thresholds are the mean
 * self-confidence; a sample is assigned to the most probable class whose probability reaches that
 * class's threshold, and is an issue when that class is not its label and beats the label's probability.
 */
export function findLabelIssues(probs: readonly Float32Array[], labels: ArrayLike<number>, classes: number, unseenThreshold = 0.5): ConfidentLearningResult {
  const sum = new Float64Array(classes), count = new Float64Array(classes);
  for (let i = 0; i < probs.length; i++) {
    const y = labels[i]!;
    sum[y]! += probs[i]![y]!;
    count[y]! += 1;
  }
  // A class nobody labelled has no self-confidence to average; demand plain confidence instead.
  const thresholds = Float64Array.from(sum, (s, c) => (count[c]! > 0 ? s / count[c]! : unseenThreshold));
  const joint = new Int32Array(classes * classes);
  const issues: LabelIssue[] = [];
  for (let i = 0; i < probs.length; i++) {
    const p = probs[i]!, y = labels[i]!;
    let best = -1;
    for (let c = 0; c < classes; c++) if (p[c]! >= thresholds[c]! && (best < 0 || p[c]! > p[best]!)) best = c;
    if (best < 0) continue;
    joint[y * classes + best]! += 1;
    if (best !== y && p[best]! > p[y]!) {
      issues.push({ index: i, given: y, suggested: best, selfConfidence: p[y]!, suggestedConfidence: p[best]! });
    }
  }
  issues.sort((a, b) => b.suggestedConfidence - b.selfConfidence - (a.suggestedConfidence - a.selfConfidence) || a.index - b.index);
  return { thresholds, issues, confidentJoint: joint };
}
