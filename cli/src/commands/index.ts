import type { Command } from '../command.js';
import { serveCommand } from './serve.js';
import { demoCommand } from './demo.js';
import { pkiCommand } from './pki.js';
import { modelCommand } from './model.js';
import { taskCommand } from './task.js';
import { roundCommand } from './round.js';
import { privacyCommand } from './privacy.js';
import { clientCommand } from './client.js';
import { dataCommand } from './data.js';
import { contributionsCommand } from './contributions.js';
import { auditCommand } from './audit.js';

/** Every fedmm subcommand, in the order `fedmm --help` lists them. */
export const commands: Command[] = [
  serveCommand,
  demoCommand,
  pkiCommand,
  modelCommand,
  taskCommand,
  roundCommand,
  privacyCommand,
  clientCommand,
  dataCommand,
  contributionsCommand,
  auditCommand,
];
