import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { CallToolRequestSchema, ListToolsRequestSchema, SetLevelRequestSchema } from '@modelcontextprotocol/sdk/types.js'
import type { CallToolResult, LoggingLevel, Tool } from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod'
import { allowList } from '../identity/authorize.ts'
import type { AllowList } from '../identity/authorize.ts'
import { MESH_ERROR_META_KEY, MeshError } from '../errors.ts'
import { ToolAdvertSchema } from '../topology/advert.ts'
import type { ToolAdvert, ToolAnnotations } from '../topology/advert.ts'
import type { CallExtra, FastCall } from './exchange-transport.ts'
import { inProcessContext, remoteContext } from './tool-context.ts'
import type { ToolContext } from './tool-context.ts'
import { issuesOf, meshErrorResult, toResult } from './tool-result.ts'
import { callScope, inboundBudget } from '../proxy/call-scope.ts'
import type { CallScope, PartListener } from '../proxy/call-scope.ts'
import { headerFilter, pickInbound } from '../proxy/headers.ts'
import type { HeaderFilter } from '../proxy/headers.ts'
import { LazyDeadline } from '../proxy/deadline.ts'
import { systemClock } from '../clock.ts'
import { Quota } from '../gossip/quota.ts'
import type { CallEvents } from '../telemetry/events.ts'
import { context } from '@opentelemetry/api'
import type { Context, Tracer } from '@opentelemetry/api'
import { endServerSpan, failSpan, inboundContext, startServerSpan, withContext } from '../telemetry/spans.ts'
import type { Clock } from '../clock.ts'

/** One tool as offered: what it provides, takes and returns (its dependencies are the node's). */
export interface ToolDefinition<I extends z.ZodRawShape = z.ZodRawShape> {
  /** The capability it provides (default: the tool's name). */
  capability?: string
  /** Semver of the capability (default 1.0.0). */
  version?: string
  tags?: string[]
  /** Default: names the tool, its capability and version, and the agent (MCP clients expect one). */
  description?: string
  /** Input fields (a zod shape); arguments are validated before the handler runs. */
  input?: I | z.ZodObject<I>
  /** Output schema: results are validated and returned as structured content. */
  output?: z.ZodRawShape | z.ZodObject
  /**
   * Who may call it over the endpoint: SPIFFE ID patterns, exact or ending in `/*`
   * (`spiffe://acme.com/agent/*`). Default: any identity of the agent's own trust domain (with
   * mutual TLS; with TLS off, anyone), never a partner's: a tool serves a registered entity's
   * agents only when its allow-list names them. Others get `MESH_ERR_CALL_NOT_AUTHORIZED`, and
   * `tools/list` does not show them the tool.
   */
  allow?: string[]
  /**
   * MCP's tool annotations (`readOnlyHint`, `idempotentHint`, `destructiveHint`, `openWorldHint`,
   * `title`): advertised and served in `tools/list`. A read-only or idempotent tool is sent to
   * another provider when the one running it is lost mid-call; any other call then fails with
   * `MESH_ERR_CALL_PROVIDER_LOST`, since it may have run.
   */
  annotations?: ToolAnnotations
  /**
   * Calls of this tool each caller identity (its SPIFFE ID; with TLS off, all callers together)
   * may make: `perMinute` on average, `burst` at once (default: `perMinute`). Past it, a call is
   * refused before it runs with `MESH_ERR_CALL_RATE_LIMITED` and when to retry.
   */
  rateLimit?: { perMinute: number, burst?: number }
  /**
   * Call options recommended to callers, advertised with the tool: `timeoutMs` (a slow tool),
   * `retries` (read-only or idempotent tools only), `hedgeAfterMs`. They take the place of the
   * caller's node-wide defaults; its options per dependency and per call win over them.
   */
  defaults?: ToolAdvert['defaults']
  /**
   * The handler emits partial results before its final one (`ctx.emit(part)`): advertised, so a
   * dependency declared `streaming: true` resolves only tools that say so.
   */
  streaming?: boolean
}

/** A tool's handler as the registry runs it: validated arguments in, anything `toResult` takes out. */
export type ToolRun = (args: unknown, ctx: ToolContext) => unknown

/**
 * The agent's tools: their adverts, and the one path every call takes, whether it came over the
 * endpoint's fast path, through the SDK's engine, or from the agent itself: arguments validated,
 * the handler run, its result checked against the output schema. Failures the mesh detects are
 * `isError` results with their code in `_meta` (see `MESH_ERROR_META_KEY`).
 */
export interface ToolRegistry {
  readonly size: number
  /** Adds a tool; throws MESH_ERR_TOOL_INVALID for a bad definition or a taken name. */
  register(name: string, definition: ToolDefinition, run: ToolRun): void
  /** The tools as the advert carries them. */
  adverts(): ToolAdvert[]
  /** Serves `tools/list` (from the adverts), `tools/call` and `logging/setLevel` on the engine. */
  install(mcp: McpServer): void
  /** `tools/call` on the endpoint's fast path. */
  readonly fastCall: FastCall
  /** Runs one of the agent's own tools in process (a dependency on its own capability); its parts go to `onPart`. */
  callLocal(name: string, args: unknown, signal: AbortSignal, headers?: Record<string, string>, onPart?: PartListener): Promise<CallToolResult>
}

interface LocalTool {
  allow?: AllowList
  limit?: Quota
  advert: ToolAdvert
  input: z.ZodObject
  output: z.ZodObject | undefined
  run: ToolRun
}

/** Creates the registry of one agent (`agent` names it in default descriptions and logs). */
export function createToolRegistry (init: { agent: string, onDenied?: (tool: string, caller: string | undefined, why?: 'not-authorized' | 'rate-limited') => void, defaultAllow?: AllowList, clock?: Clock, propagate?: HeaderFilter, events?: CallEvents, tracer?: Tracer }): ToolRegistry {
  const propagate = init.propagate ?? headerFilter([])
  const clock = init.clock ?? systemClock
  const tools = new Map<string, LocalTool>()
  // One server serves every caller, so the level is the endpoint's (the SDK keeps it per session).
  let logLevel: LoggingLevel = 'info'
  const level = (): LoggingLevel => logLevel
  let listed: Array<{ allow: AllowList | undefined, tool: Tool }> | undefined

  /**
   * The one call path: validate, run, check the output. `budget`: the ms the caller still waits
   * (its deadline header): the handler's signal aborts then, and its own outbound calls inherit
   * the deadline (`callScope`).
   */
  async function invoke (name: string, tool: LocalTool, args: unknown, ctx: ToolContext, budget?: number, headers?: Record<string, string>): Promise<CallToolResult> {
    let parsed = parseMaybeAsync(tool.input, args ?? {})
    if (parsed instanceof Promise) parsed = await parsed
    if (!parsed.success) {
      return meshErrorResult('MESH_ERR_CALL_INVALID_ARGS', `Input validation error: Invalid arguments for tool ${name}: ${z.prettifyError(parsed.error)}`,
        { issues: issuesOf(parsed.error) })
    }
    // The deadline's signal is made when the handler (or a call it makes) first reads it.
    const limit = budget === undefined ? undefined : new LazyDeadline(clock, budget, ctx.signal)
    const run: ToolContext = limit === undefined ? ctx : new BoundedContext(ctx, limit)
    const outer = callScope.getStore()
    const carried = headers ?? outer?.headers
    const scope: CallScope = limit === undefined
      ? { signal: ctx.signal, ...(outer?.deadlineAt === undefined ? {} : { deadlineAt: outer.deadlineAt }), ...(carried === undefined ? {} : { headers: carried }) }
      : new BoundedScope(limit, carried)
    let result: CallToolResult
    try {
      result = toResult(await callScope.run(scope, () => tool.run(parsed.data, run)))
    } catch (err) {
      return meshErrorResult('MESH_ERR_CALL_TOOL_ERROR', err instanceof Error ? err.message : String(err))
    } finally {
      limit?.done()
    }
    if (tool.output === undefined || result.isError === true) return result
    if (result.structuredContent === undefined) {
      return meshErrorResult('MESH_ERR_CALL_INVALID_OUTPUT', `Output validation error: Tool ${name} has an output schema but no structured content was provided`, { issues: [] })
    }
    let checked = parseMaybeAsync(tool.output, result.structuredContent)
    if (checked instanceof Promise) checked = await checked
    if (!checked.success) {
      return meshErrorResult('MESH_ERR_CALL_INVALID_OUTPUT', `Output validation error: Invalid structured content for tool ${name}: ${z.prettifyError(checked.error)}`,
        { issues: issuesOf(checked.error) })
    }
    return result
  }

  const unknownTool = (name: string): CallToolResult =>
    meshErrorResult('MESH_ERR_CALL_UNKNOWN_TOOL', `Tool ${name} not found on agent ${init.agent}`, { tool: name })

  const served = init.events?.served
  const capabilityOf = (name: string): string => tools.get(name)?.advert.capability ?? name
  /** Tells the observer how a call of `name` ended (`started` on the clock). */
  const report = (name: string, caller: string | undefined, started: number) => (r: CallToolResult): CallToolResult => {
    const meta = r._meta?.[MESH_ERROR_META_KEY] as { code?: unknown } | undefined
    const outcome = r.isError !== true ? 'ok' : typeof meta?.code === 'string' ? meta.code : 'MESH_ERR_CALL_TOOL_ERROR'
    served!({ tool: name, capability: capabilityOf(name), caller, outcome, ms: clock.now() - started })
    return r
  }

  const serve = (name: string, args: unknown, extra: CallExtra): Promise<CallToolResult> => {
    const tool = tools.get(name)
    if (tool === undefined) return Promise.resolve(unknownTool(name))
    const allow = tool.allow ?? init.defaultAllow
    if (allow !== undefined && !allow.allows(extra.authInfo?.clientId)) {
      const caller = extra.authInfo?.clientId
      init.onDenied?.(name, caller)
      return Promise.resolve(meshErrorResult('MESH_ERR_CALL_NOT_AUTHORIZED', `${caller ?? 'a caller with no identity'} may not call ${name} on agent ${init.agent}`, { tool: name, caller: caller ?? null }))
    }
    if (tool.limit !== undefined) {
      const caller = extra.authInfo?.clientId ?? 'anonymous'
      if (!tool.limit.take(`${caller}`)) {
        const retryAfterMs = tool.limit.wait(caller)
        init.onDenied?.(name, caller, 'rate-limited')
        return Promise.resolve(meshErrorResult('MESH_ERR_CALL_RATE_LIMITED', `${caller} has used its rate of calls of ${name} on agent ${init.agent}: retry in ${Math.ceil(retryAfterMs / 1000)} s`, { tool: name, caller, retryAfterMs }))
      }
    }
    const inbound = extra.requestInfo?.headers ?? {}
    return invoke(name, tool, args, remoteContext(extra, level, init.agent), inboundBudget(inbound), pickInbound(inbound, propagate))
  }
  const tracer = init.tracer
  /**
   * Runs `call` in a server span under `parent` (the caller's trace context), ended with its
   * result, then hands the result to `done` (the observer's report), all in one `.then`; a span
   * that is not recorded adds none.
   */
  const traced = (name: string, caller: string | undefined, parent: Context, call: () => Promise<CallToolResult>, done: ((r: CallToolResult) => CallToolResult) | undefined): Promise<CallToolResult> => {
    const { span, ctx } = startServerSpan(tracer!, name, capabilityOf, caller, parent)
    const result = withContext(ctx, call)
    if (!span.isRecording()) return done === undefined ? result : result.then(done)
    return result.then((r) => {
      endServerSpan(span, r)
      return done === undefined ? r : done(r)
    }, (err: unknown) => {
      failSpan(span, 'MESH_ERR_CALL_TOOL_ERROR', String(err))
      throw err
    })
  }
  const fastCall: FastCall = (name, args, extra) => {
    const done = served === undefined ? undefined : report(name, extra.authInfo?.clientId, clock.now())
    if (tracer === undefined) return done === undefined ? serve(name, args, extra) : serve(name, args, extra).then(done)
    return traced(name, extra.authInfo?.clientId, inboundContext(extra.requestInfo?.headers ?? {}, extra._meta), () => serve(name, args, extra), done)
  }

  return {
    get size () { return tools.size },
    fastCall,

    register (name, definition, run) {
      if (tools.has(name)) throw new MeshError('MESH_ERR_TOOL_INVALID', `tool ${name} is already registered on this node`)
      const input = (definition.input instanceof z.ZodObject ? definition.input : z.object(definition.input ?? {})) as z.ZodObject
      const output = definition.output === undefined ? undefined : definition.output instanceof z.ZodObject ? definition.output : z.object(definition.output)
      const capability = definition.capability ?? name
      const version = definition.version ?? '1.0.0'
      const parsed = ToolAdvertSchema.safeParse({
        name,
        capability,
        version,
        tags: definition.tags ?? [],
        description: definition.description ?? `${name}: capability ${capability} ${version}, served by mesh agent ${init.agent}`,
        // JSON Schema 2020-12, MCP's default dialect; inputs as callers write them (defaults optional).
        inputSchema: z.toJSONSchema(input, { io: 'input' }),
        outputSchema: output === undefined ? undefined : z.toJSONSchema(output),
        annotations: definition.annotations,
        defaults: definition.defaults,
        ...(definition.streaming === true ? { streaming: true } : {}),
      })
      if (!parsed.success) throw new MeshError('MESH_ERR_TOOL_INVALID', `tool ${name}: ${z.prettifyError(parsed.error)}`, { details: { issues: parsed.error.issues } })
      let allow: AllowList | undefined
      try {
        if (definition.allow !== undefined) allow = allowList(definition.allow)
      } catch (err) {
        throw new MeshError('MESH_ERR_TOOL_INVALID', `tool ${name}: ${(err as Error).message}`, { cause: err })
      }
      const r = definition.rateLimit
      if (r !== undefined && !(r.perMinute > 0 && (r.burst === undefined || r.burst >= 1))) throw new MeshError('MESH_ERR_TOOL_INVALID', `tool ${name}: rateLimit needs perMinute above 0 and a burst of at least 1`)
      const limit = r === undefined ? undefined : new Quota({ clock, perMinute: r.perMinute, burst: r.burst ?? r.perMinute })
      tools.set(name, { advert: parsed.data, input, output, run, ...(allow === undefined ? {} : { allow }), ...(limit === undefined ? {} : { limit }) })
      listed = undefined
    },

    adverts () {
      return [...tools.values()].map((t) => t.advert)
    },

    install (mcp) {
      const server = mcp.server
      // tools/list serves the schemas the advert carries (JSON Schema 2020-12, MCP's default
      // dialect), so MCP clients and mesh peers see the same thing; the SDK would emit draft-07.
      // A caller is shown only the tools it may call.
      server.setRequestHandler(ListToolsRequestSchema, (_req, extra) => {
        listed ??= [...tools.values()].map(({ advert: a, allow }) => ({
          allow: allow ?? init.defaultAllow,
          tool: {
            name: a.name,
            ...(a.description === undefined ? {} : { description: a.description }),
            inputSchema: a.inputSchema as Tool['inputSchema'],
            ...(a.outputSchema === undefined ? {} : { outputSchema: a.outputSchema as Tool['outputSchema'] }),
            ...(a.annotations === undefined ? {} : { annotations: a.annotations }),
          },
        }))
        const caller = extra.authInfo?.clientId
        return { tools: listed.filter((l) => l.allow === undefined || l.allow.allows(caller)).map((l) => l.tool) }
      })
      // Calls the fast path leaves to the engine take the same path.
      server.setRequestHandler(CallToolRequestSchema, async (req, extra) =>
        await (fastCall(req.params.name, req.params.arguments, extra) ?? unknownTool(req.params.name)))
      server.setRequestHandler(SetLevelRequestSchema, (req) => {
        logLevel = req.params.level
        return {}
      })
    },

    async callLocal (name, args, signal, headers, onPart) {
      const tool = tools.get(name)
      if (tool === undefined) throw new MeshError('MESH_ERR_CALL_NO_PROVIDER', `tool ${name} is not registered on this node`)
      const started = clock.now()
      const run = (): Promise<CallToolResult> => invoke(name, tool, args, inProcessContext(signal, headers, onPart), undefined, headers)
      const done = served === undefined ? undefined : report(name, undefined, started)
      if (tracer !== undefined) return await traced(name, undefined, context.active(), run, done)
      const r = await run()
      return done === undefined ? r : done(r)
    },
  }
}

/** A handler's context under a deadline: the caller's, with the deadline's signal (made when read). */
class BoundedContext implements ToolContext {
  readonly #limit: LazyDeadline
  readonly authInfo?: ToolContext['authInfo']
  readonly headers: ToolContext['headers']
  readonly progress: ToolContext['progress']
  readonly log: ToolContext['log']
  readonly emit: ToolContext['emit']
  readonly pipe: ToolContext['pipe']
  readonly mcp?: ToolContext['mcp']
  constructor (ctx: ToolContext, limit: LazyDeadline) {
    this.#limit = limit
    if (ctx.authInfo !== undefined) this.authInfo = ctx.authInfo
    this.headers = ctx.headers
    this.progress = ctx.progress
    this.log = ctx.log
    this.emit = ctx.emit
    this.pipe = ctx.pipe
    if (ctx.mcp !== undefined) this.mcp = ctx.mcp
  }

  get signal (): AbortSignal { return this.#limit.signal }
}

// Every field of ToolContext must be declared (and copied) above: a field added to the interface
// and missed here fails the type check instead of vanishing from handlers that have a deadline.
const everyFieldCarried: Exclude<keyof ToolContext, keyof BoundedContext> extends never ? true : never = true
void everyFieldCarried

/** What a handler's own calls inherit under a deadline: it, its signal (made when read), the carried headers. */
class BoundedScope implements CallScope {
  readonly #limit: LazyDeadline
  readonly deadlineAt: number
  readonly headers?: Record<string, string>
  constructor (limit: LazyDeadline, headers: Record<string, string> | undefined) {
    this.#limit = limit
    this.deadlineAt = limit.at
    if (headers !== undefined) this.headers = headers
  }

  get signal (): AbortSignal { return this.#limit.signal }
}

/**
 * Synchronous parse (the common case, cheaper: the result itself, no promise to await), async
 * only for schemas with async refinements.
 */
function parseMaybeAsync (schema: z.ZodType, value: unknown): z.ZodSafeParseResult<unknown> | Promise<z.ZodSafeParseResult<unknown>> {
  try {
    return schema.safeParse(value)
  } catch (err) {
    if (err instanceof z.core.$ZodAsyncError) return schema.safeParseAsync(value)
    throw err
  }
}
