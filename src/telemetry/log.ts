// Structured logs: one pino root per process, a child per component (`component: "gossip"`), JSON
// lines on stderr, or pino-pretty's text when stderr is a terminal. stdout stays free: meshctl prints
// its results there, and an agent may serve MCP over stdio.
//
// pino-pretty runs as a plain function in this thread (prettyFactory), never as a pino transport: a
// transport starts a worker that resolves its files at run time, which the esbuild bundle breaks,
// and a worker can lose the last lines of a process that exits.
import { createRequire } from 'node:module'
import { hostname } from 'node:os'
import { pino } from 'pino'
import type { DestinationStream, Level as PinoLevel, Logger as PinoLogger } from 'pino'
import type PinoPretty from 'pino-pretty'
import { parseLogLevel } from '../config.ts'
import type { LogLevel } from '../config.ts'
import { debugLevel, parseDebug } from './debug-env.ts'
import { activeTraceFields } from './log-context.ts'

/**
 * One log call, printf-style (`%s`, `%d`, `%o`, `%j`): the format is applied only when the line is
 * written. An Error in the arguments (or in place of the message) is logged as the structured
 * field `err` (type, message, stack, code, details); in the message it stands as its message.
 */
export type LogFn = (message: string | Error, ...args: unknown[]) => void

/**
 * A component's logger. Called directly it logs at debug level, like the @libp2p/logger it
 * replaces (`log('dial %s failed: %s', peer, reason)`).
 */
export interface Logger extends LogFn {
  trace: LogFn
  debug: LogFn
  info: LogFn
  warn: LogFn
  error: LogFn
  /** True when debug lines are written: check it before computing an expensive argument. */
  readonly enabled: boolean
  /** A logger whose lines also carry `bindings` (a node binds `{ agent }`). */
  child(bindings: Record<string, unknown>): Logger
}

let root: PinoLogger | undefined

/**
 * The logger of one component, named like the `DEBUG` namespace it answers to: `mesh:gossip`
 * logs with `component: "gossip"`. The level is `MCP_MESH_LOG_LEVEL` (default info), read once,
 * when the first logger is made; `DEBUG=mesh:gossip` (or `mesh:*`) lowers one component to debug,
 * `mesh:gossip:trace` to trace.
 */
export function logger (name: string): Logger {
  const r = root ??= createRoot()
  const component = name.startsWith('mesh:') ? name.slice('mesh:'.length) : name
  const fromDebug = debugLevel(parseDebug(process.env.DEBUG), name)
  const lower = fromDebug !== undefined && r.levels.values[fromDebug] < r.levelVal
  return wrap(r.child({ component }, lower ? { level: fromDebug } : {}))
}

function createRoot (): PinoLogger {
  let level: LogLevel = 'info'
  let invalid: Error | undefined
  try {
    level = parseLogLevel()
  } catch (err) {
    // Loggers are made as modules load: failing here would break every import of the library.
    // The variable is checked again where options are parsed, and that fails with its code.
    invalid = err as Error
  }
  const tty = process.stderr.isTTY === true
  const r = pino({
    level,
    base: { pid: process.pid, hostname: hostname() },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin: traceMixin,
    mixinMergeStrategy: mergeTrace,
  }, tty ? prettyStderr() : pino.destination({ dest: 2, sync: true }))
  // Synchronous writes: logs are few at info, and a line written just before a crash or exit is kept.
  if (invalid !== undefined) r.child({ component: 'log' }).warn('%s; logging at info', invalid.message)
  return r
}

// No span active (always, without tracing): one shared marker, so nothing is allocated or merged.
const NO_TRACE = Object.freeze({})
function traceMixin (): object {
  return activeTraceFields() ?? NO_TRACE
}
function mergeTrace (line: object, trace: object): object {
  return trace === NO_TRACE ? line : Object.assign(trace, line)
}

function prettyStderr (): DestinationStream {
  // Loaded only for a terminal (and left out of the bundle): a service's logs never need it.
  const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty
  const format = pretty.prettyFactory({
    colorize: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,component,agent,trace_flags',
    messageFormat: '{if agent}{agent} {end}{if component}[{component}] {end}{msg}',
  })
  // A terminal's stderr is written synchronously by Node on POSIX.
  return { write: (line: string) => { process.stderr.write(format(line)) } }
}

function wrap (p: PinoLogger): Logger {
  const at = (level: PinoLevel): LogFn => {
    const threshold = p.levels.values[level]
    // The level check comes first: a call below the level formats nothing and walks no arguments.
    return (message, ...args) => { if (threshold >= p.levelVal) emit(p, level, message, args) }
  }
  const log = at('debug') as Logger
  return Object.defineProperties(log, {
    trace: { value: at('trace') },
    debug: { value: log },
    info: { value: at('info') },
    warn: { value: at('warn') },
    error: { value: at('error') },
    enabled: { get: () => p.isLevelEnabled('debug') },
    child: { value: (bindings: Record<string, unknown>) => wrap(p.child(bindings)) },
  })
}

function emit (p: PinoLogger, level: PinoLevel, message: string | Error, args: unknown[]): void {
  let err: Error | undefined
  if (message instanceof Error) {
    err = message
    message = typeof args[0] === 'string' ? args.shift() as string : err.message
  }
  for (let i = 0; i < args.length; i++) {
    const a = args[i]
    if (a instanceof Error) {
      err ??= a
      args[i] = a.message
    }
  }
  // pino's overloads cannot type a spread of unknown arguments; its runtime takes any.
  const write = p as unknown as Record<PinoLevel, (...a: unknown[]) => void>
  if (err === undefined) write[level](message, ...args)
  else write[level]({ err }, message, ...args)
}
