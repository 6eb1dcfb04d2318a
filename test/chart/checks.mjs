// The check harness of the chart and dashboard scripts: one "ok"/"FAIL" line per check, and a
// closing "N passed, M failed" that test/chart/run.sh adds up.
let passed = 0;
let failed = 0;

/** Runs one named check; a thrown error fails it with its message. */
export function check(name, fn) {
  try {
    fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}\n     ${String(err.message).split('\n').join('\n     ')}`);
  }
}

export function assert(cond, message) {
  if (!cond) throw new Error(message);
}

/** Prints the closing summary and exits 1 if any check failed. */
export function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}
