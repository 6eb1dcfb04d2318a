#!/usr/bin/env node
// The fedmm command: see `fedmm --help`. Built code lives in cli/dist (run `make build` first).
import('../cli/dist/main.js').catch((e) => {
  if (e && e.code === 'ERR_MODULE_NOT_FOUND') {
    process.stderr.write('fedmm is not built yet: run `make build` in the repository root\n');
    process.exit(2);
  }
  throw e;
});
