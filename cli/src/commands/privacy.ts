import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';
import { UsageError, type Command } from '../command.js';

const usage = `fedmm privacy <subcommand> [options]

Live (talk to the privacy service at --addr, default $FEDMM_PRIVACY_ADDR or 127.0.0.1:7003):
  budget set <tenant|task> <id> --epsilon E [--delta D] [--accountant rdp|pld]
  budget show <tenant|task> <id> [--json]
  ledger [--task ID] [--tenant ID] [--json]

Offline calculators (print one number):
  epsilon --sampling-rate Q --noise-multiplier S --steps T --delta D [--accountant rdp|pld]
      epsilon spent by T rounds of the Poisson-subsampled Gaussian
  plan --epsilon E --delta D --sampling-rate Q --steps T [--accountant rdp|pld]
      smallest noise multiplier that keeps T rounds within (E, D)

With FEDMM_TLS_CA, FEDMM_TLS_CERT and FEDMM_TLS_KEY set, live calls use mutual TLS.`;

const number = (name: string, v: string | undefined, check: (x: number) => boolean, hint: string): number => {
  if (v === undefined) throw new UsageError(`--${name} is required (${hint})`);
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x) || !check(x)) throw new UsageError(`--${name} must be ${hint}, got ${JSON.stringify(v)}`);
  return x;
};
const integer = (name: string, v: string | undefined): number => number(name, v, (x) => Number.isSafeInteger(x) && x >= 0, 'a non-negative integer');
const accountantOf = (v: string | undefined): 'rdp' | 'pld' => {
  if (v === undefined || v === 'rdp' || v === 'pld') return v ?? 'rdp';
  throw new UsageError(`--accountant must be rdp or pld, got ${JSON.stringify(v)}`);
};
const scopeOf = (v: string | undefined): 'tenant' | 'task' => {
  if (v === 'tenant' || v === 'task') return v;
  throw new UsageError(`name the budget's scope: tenant or task, got ${JSON.stringify(v ?? '')}`);
};
const fmt = (x: number): string => (Number.isFinite(x) ? String(Number(x.toPrecision(6))) : 'unlimited');

function peerCredentials(): ChannelCredentials {
  const [ca, cert, key] = ['FEDMM_TLS_CA', 'FEDMM_TLS_CERT', 'FEDMM_TLS_KEY'].map((n) => process.env[n]);
  if (!ca && !cert && !key) return credentials.createInsecure();
  if (!ca || !cert || !key) throw new UsageError('set all of FEDMM_TLS_CA, FEDMM_TLS_CERT and FEDMM_TLS_KEY for mutual TLS, or none');
  return credentials.createSsl(readFileSync(ca), readFileSync(key), readFileSync(cert));
}

async function connect(addr: string | undefined) {
  const { PrivacyClient } = await import('@fedmm/privacy-service');
  return new PrivacyClient(addr ?? process.env['FEDMM_PRIVACY_ADDR'] ?? '127.0.0.1:7003', { credentials: peerCredentials(), deadlineMs: 15_000 });
}

const out = (s: string): void => {
  process.stdout.write(`${s}\n`);
};

async function budget(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { epsilon: { type: 'string' }, delta: { type: 'string' }, accountant: { type: 'string' }, addr: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  const [action, scopeArg, id] = positionals;
  if (action !== 'set' && action !== 'show') throw new UsageError('budget needs an action: set or show');
  const scope = scopeOf(scopeArg);
  if (!id) throw new UsageError(`name the ${scope} whose budget to ${action}`);
  const client = await connect(values.addr);
  try {
    const b =
      action === 'set'
        ? (await client.raw.setBudget({
            budget: {
              scope,
              id,
              epsilon: number('epsilon', values.epsilon, (x) => x > 0, 'a number > 0'),
              delta: values.delta === undefined ? 1e-5 : number('delta', values.delta, (x) => x > 0 && x < 1, 'in (0, 1)'),
              accountant: accountantOf(values.accountant),
              spentEpsilon: 0,
              reservedEpsilon: 0,
              explicit: true,
            },
          })).budget
        : (await client.raw.getBudget({ scope, id })).budget;
    if (!b) throw new UsageError(`the service returned no budget for ${scope} ${id}`);
    if (values.json) {
      out(JSON.stringify({ ...b, epsilon: Number.isFinite(b.epsilon) ? b.epsilon : null }));
      return 0;
    }
    out(`${b.scope} ${b.id}`);
    out(`  budget      ${fmt(b.epsilon)}${b.explicit ? '' : ' (service default)'}`);
    out(`  delta       ${b.delta < 1e-3 ? b.delta.toExponential() : b.delta}`);
    out(`  accountant  ${b.accountant}`);
    out(`  spent       ${fmt(b.spentEpsilon)}`);
    out(`  reserved    ${fmt(b.reservedEpsilon)}`);
    return 0;
  } finally {
    client.close();
  }
}

async function ledger(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { task: { type: 'string' }, tenant: { type: 'string' }, addr: { type: 'string' }, json: { type: 'boolean', default: false } } });
  const client = await connect(values.addr);
  try {
    const res = await client.raw.getLedger({ taskId: values.task ?? '', tenant: values.tenant ?? '' });
    if (values.json) {
      out(JSON.stringify(res));
      return 0;
    }
    const rows = res.entries.map((e) => [
      new Date(e.timeUnixMs).toISOString(),
      e.taskId,
      String(e.round),
      String(e.attempt),
      e.tenant,
      e.state,
      fmt(e.epsilon),
      fmt(e.cumulativeEpsilon),
      e.events.map((v) => `q=${v.samplingRate} s=${v.noiseMultiplier} T=${v.steps}`).join('; ') + (e.reason ? ` (${e.reason})` : ''),
    ]);
    const head = ['TIME', 'TASK', 'ROUND', 'ATTEMPT', 'TENANT', 'STATE', 'EPSILON', 'CUMULATIVE', 'EVENTS'];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    for (const r of [head, ...rows]) out(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
    out('');
    out(values.task ? `committed epsilon per tenant in task ${values.task}:` : 'committed epsilon per tenant, all tasks:');
    for (const [tenant, eps] of Object.entries(res.epsilonByTenant).sort(([a], [b]) => a.localeCompare(b))) out(`  ${tenant}  ${fmt(eps)}`);
    return 0;
  } finally {
    client.close();
  }
}

async function calculator(kind: 'epsilon' | 'plan', argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'sampling-rate': { type: 'string' },
      'noise-multiplier': { type: 'string' },
      steps: { type: 'string' },
      delta: { type: 'string' },
      epsilon: { type: 'string' },
      accountant: { type: 'string' },
    },
  });
  const dp = await import('@fedmm/dp');
  const samplingRate = number('sampling-rate', values['sampling-rate'], (x) => x > 0 && x <= 1, 'in (0, 1]');
  const steps = integer('steps', values.steps);
  const delta = number('delta', values.delta, (x) => x > 0 && x < 1, 'in (0, 1)');
  const accountant = accountantOf(values.accountant);
  if (kind === 'epsilon') {
    const noiseMultiplier = number('noise-multiplier', values['noise-multiplier'], (x) => x >= 0, 'a number >= 0');
    out(String(dp.epsilonFor({ samplingRate, noiseMultiplier, steps, delta, accountant })));
  } else {
    const epsilon = number('epsilon', values.epsilon, (x) => x > 0, 'a number > 0');
    out(String(dp.planNoise({ epsilon, delta, samplingRate, steps, accountant })));
  }
  return 0;
}

export const privacyCommand: Command = {
  name: 'privacy',
  summary: 'DP budgets and ledger of the privacy service; epsilon and noise calculators',
  usage,
  async run(argv) {
    const [sub, ...rest] = argv;
    switch (sub) {
      case 'budget':
        return budget(rest);
      case 'ledger':
        return ledger(rest);
      case 'epsilon':
        return calculator('epsilon', rest);
      case 'plan':
        return calculator('plan', rest);
      default:
        throw new UsageError(sub ? `unknown subcommand ${JSON.stringify(sub)}` : 'name a subcommand: budget, ledger, epsilon or plan');
    }
  },
};
