import { parseArgs } from 'node:util';
import { task as tpb } from '@fedmm/proto';
import { UsageError, type Command } from '../command.js';
import { DEFAULT_AGGREGATOR, intFlag, numFlag, table, when, withAggregator } from './operator.js';

const usage = `fedmm task <create|show|list> [options]

  fedmm task create --id T --model M --base-version V --member A --member B ... --rounds N
                    [--strategy fedavg] [--param mu=0.01 ...] [--deadline 120] [--min-clients 2]
                    [--fraction 1] [--max-clients 0] [--epochs 2] [--batch-size 32] [--lr 0.01]
                    [--client-config key=value ...] [--dp none|record|client] [--noise X]
                    [--target-epsilon E] [--delta D] [--clip-norm C] [--max-update-norm X]
                    [--valuation auto] [--terms FILE] [--addr ADDR]
      Defines a federated fine-tuning task. V is an adapter version (fedmm model pretrain prints
      one); --epochs, --batch-size and --lr reach the agents as client_config local_epochs,
      batch_size and learning_rate.
  fedmm task show T [--addr ADDR]
  fedmm task list [--addr ADDR]

--addr is the aggregator: FEDMM_AGGREGATOR_ADDR or ${DEFAULT_AGGREGATOR} by default.`;

export const taskCommand: Command = {
  name: 'task',
  summary: 'create, show and list federated fine-tuning tasks',
  usage,
  run: (argv) => runTask(argv, (t) => process.stdout.write(t)),
};

function keyValues(flag: string, list: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const kv of list) {
    const m = /^([a-z][a-z0-9_]*)=(.+)$/.exec(kv);
    const n = m ? Number(m[2]) : NaN;
    if (!m || !Number.isFinite(n)) throw new UsageError(`--${flag} takes key=number with a snake_case key, not ${JSON.stringify(kv)}`);
    out[m[1]!] = n;
  }
  return out;
}

/** The readable description of a task (`task show`, `task create`). */
export function describeTask(t: tpb.Task): string {
  const p = t.privacy;
  const rows: [string, string][] = [
    ['task', t.taskId],
    ['state', `${t.state || 'created'} (round ${t.currentRound} of ${t.rounds})`],
    ['model', `${t.modelId}, starting from ${t.baseVersionId}`],
    ['members', t.members.join(', ')],
    ['strategy', `${t.strategy?.name || 'fedavg'}${Object.keys(t.strategy?.params ?? {}).length ? ` ${JSON.stringify(t.strategy?.params)}` : ''}`],
    ['selection', `fraction ${t.selection?.fraction || 1}, min ${t.selection?.minClients || 1}${t.selection?.maxClients ? `, max ${t.selection.maxClients}` : ''} clients`],
    ['deadline', `${t.roundDeadlineSeconds} s per round`],
    ['privacy', !p || !p.mode || p.mode === 'none' ? 'none' : `${p.mode}-level DP, noise ${p.noiseMultiplier.toFixed(3)}, delta ${p.delta}, ${p.accountant}${p.secureAggregation ? `, secure aggregation${p.secaggGroupSize > 0 ? ` in groups of ${p.secaggGroupSize}` : ''}` : ''}`],
    ['client config', Object.entries(t.clientConfig).map(([k, v]) => `${k}=${v}`).join(', ') || '-'],
    ['valuation', t.valuationMethod || 'auto'],
    ['created', when(t.createTime)],
  ];
  if (t.termsDigest) rows.push(['terms', `sha256 ${t.termsDigest}`]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n';
}

/** `fedmm task` with its output sent to `write`. */
export async function runTask(argv: string[], write: (text: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      addr: { type: 'string', default: DEFAULT_AGGREGATOR },
      id: { type: 'string' },
      model: { type: 'string' },
      'base-version': { type: 'string' },
      member: { type: 'string', multiple: true, default: [] },
      rounds: { type: 'string' },
      strategy: { type: 'string', default: 'fedavg' },
      param: { type: 'string', multiple: true, default: [] },
      deadline: { type: 'string' },
      'min-clients': { type: 'string' },
      'max-clients': { type: 'string' },
      fraction: { type: 'string' },
      epochs: { type: 'string' },
      'batch-size': { type: 'string' },
      lr: { type: 'string' },
      'client-config': { type: 'string', multiple: true, default: [] },
      dp: { type: 'string', default: 'none' },
      noise: { type: 'string' },
      'target-epsilon': { type: 'string' },
      delta: { type: 'string' },
      'clip-norm': { type: 'string' },
      'max-update-norm': { type: 'string' },
      valuation: { type: 'string', default: '' },
      terms: { type: 'string' },
    },
  });
  const [action, ...rest] = positionals;
  const addr = values.addr;
  switch (action) {
    case 'create': {
      if (rest.length > 0) throw new UsageError(`unexpected arguments: ${rest.join(' ')}`);
      for (const f of ['id', 'model', 'base-version', 'rounds'] as const) if (!values[f]) throw new UsageError(`--${f} is required`);
      if (values.member.length === 0) throw new UsageError('name the member tenants with --member NAME (repeat it)');
      if (!['none', 'record', 'client'].includes(values.dp)) throw new UsageError(`--dp must be none, record or client, not ${JSON.stringify(values.dp)}`);
      const clientConfig: Record<string, number> = {
        local_epochs: intFlag('epochs', values.epochs, 2),
        batch_size: intFlag('batch-size', values['batch-size'], 32),
        learning_rate: numFlag('lr', values.lr, (n) => n > 0, 'a positive number') ?? 0.01,
        ...keyValues('client-config', values['client-config']),
      };
      const termsJson = values.terms ? (await import('node:fs')).readFileSync(values.terms, 'utf8') : '';
      const task = tpb.Task.fromPartial({
        taskId: values.id!,
        modelId: values.model!,
        baseVersionId: values['base-version']!,
        members: values.member,
        rounds: intFlag('rounds', values.rounds, 1),
        strategy: { name: values.strategy, params: keyValues('param', values.param), clipNorm: 0 },
        privacy: {
          mode: values.dp,
          noiseMultiplier: numFlag('noise', values.noise) ?? 0,
          targetEpsilon: numFlag('target-epsilon', values['target-epsilon']) ?? 0,
          delta: numFlag('delta', values.delta, (n) => n > 0 && n < 1, 'in (0, 1)') ?? 0,
          clipNorm: numFlag('clip-norm', values['clip-norm']) ?? 0,
        },
        selection: {
          fraction: numFlag('fraction', values.fraction, (n) => n > 0 && n <= 1, 'in (0, 1]') ?? 1,
          minClients: intFlag('min-clients', values['min-clients'], 1),
          maxClients: intFlag('max-clients', values['max-clients'], 0, 0),
        },
        roundDeadlineSeconds: intFlag('deadline', values.deadline, 120),
        maxUpdateNorm: numFlag('max-update-norm', values['max-update-norm']) ?? 0,
        termsJson,
        clientConfig,
        valuationMethod: values.valuation,
      });
      const created = await withAggregator(addr, `creating task ${task.taskId}`, async (c) => (await c.createTask({ task }, { deadlineMs: 30_000 })).task!);
      write(`created task ${created.taskId}\n\n${describeTask(created)}\nnext: fedmm round start ${created.taskId}\n`);
      return 0;
    }
    case 'show': {
      const [taskId, ...extra] = rest;
      if (!taskId || extra.length > 0) throw new UsageError('name exactly one task: fedmm task show T');
      const t = await withAggregator(addr, `reading task ${taskId}`, async (c) => (await c.getTask({ taskId }, { deadlineMs: 15_000 })).task!);
      write(describeTask(t));
      return 0;
    }
    case 'list': {
      if (rest.length > 0) throw new UsageError(`unexpected arguments: ${rest.join(' ')}`);
      const tasks = await withAggregator(addr, 'listing tasks', async (c) => (await c.listTasks({}, { deadlineMs: 15_000 })).tasks);
      if (tasks.length === 0) {
        write('no tasks; create one with fedmm task create\n');
        return 0;
      }
      write(table(['TASK', 'STATE', 'ROUND', 'MODEL', 'STRATEGY', 'MEMBERS', 'CREATED'], tasks.map((t) => [
        t.taskId, t.state || 'created', `${t.currentRound}/${t.rounds}`, t.modelId, t.strategy?.name || 'fedavg', String(t.members.length), when(t.createTime),
      ])));
      return 0;
    }
    default:
      throw new UsageError(action ? `unknown task action ${JSON.stringify(action)}: use create, show or list` : 'name an action: create, show or list');
  }
}
