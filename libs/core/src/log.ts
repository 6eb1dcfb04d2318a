/** Structured JSON logs, one object per line on stderr, with trace context when a span is active. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/** Returns the active trace and span ids; set by the telemetry library when it starts. */
let traceFields: () => Record<string, string> = () => ({});
export function setTraceFieldProvider(fn: () => Record<string, string>): void {
  traceFields = fn;
}

let sink: (line: string) => void = (line) => process.stderr.write(line + '\n');
/** Redirects log lines (tests capture them). */
export function setLogSink(fn: (line: string) => void): void {
  sink = fn;
}

function serialize(v: unknown): unknown {
  if (v instanceof Error) return { name: v.name, message: v.message, ...('code' in v ? { code: (v as { code: unknown }).code } : {}) };
  if (typeof v === 'bigint') return v.toString();
  return v;
}

/** Creates a logger; the level comes from FEDMM_LOG_LEVEL unless given. */
export function createLogger(base: Record<string, unknown> = {}, level?: LogLevel): Logger {
  const envLevel = process.env['FEDMM_LOG_LEVEL'] as LogLevel | undefined;
  const min = order[level ?? (envLevel && envLevel in order ? envLevel : 'info')];
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (order[lvl] < min) return;
    const rec: Record<string, unknown> = { time: new Date().toISOString(), level: lvl, msg, ...base, ...traceFields() };
    if (fields) for (const [k, v] of Object.entries(fields)) rec[k] = serialize(v);
    sink(JSON.stringify(rec));
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger({ ...base, ...fields }, level),
  };
}
