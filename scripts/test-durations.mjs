// A node:test reporter that closes the run with its slowest test files (wall time of each file's
// process, hooks included) and the files that failed, so a slow or red CI run says where to look.
// FEDMM_TEST_SLOWEST sets how many files are listed (default 15).
import { relative } from 'node:path';

/** Reads the runner's events; yields one summary when the run ends. */
export default async function* durations(source) {
  const files = [];
  for await (const event of source) {
    // A file's own result is the one whose name is the file path.
    if (event.type !== 'test:complete' || event.data.name !== event.data.file) continue;
    const { duration_ms: ms, passed } = event.data.details;
    files.push({ file: relative(process.cwd(), event.data.file), ms, passed });
  }
  if (files.length === 0) return;
  const limit = Number(process.env.FEDMM_TEST_SLOWEST ?? 15);
  const total = files.reduce((sum, f) => sum + f.ms, 0);
  const lines = [`# ${files.length} test files, ${(total / 1000).toFixed(1)}s of file time in all; slowest:`];
  for (const f of [...files].sort((a, b) => b.ms - a.ms).slice(0, limit)) {
    lines.push(`# ${(f.ms / 1000).toFixed(1).padStart(7)}s  ${f.file}${f.passed ? '' : '  (failed)'}`);
  }
  const failed = files.filter((f) => !f.passed);
  if (failed.length > 0) lines.push(`# failed files: ${failed.map((f) => f.file).join(', ')}`);
  yield `${lines.join('\n')}\n`;
}
