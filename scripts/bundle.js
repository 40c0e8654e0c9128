// Builds the JavaScript in dist/ (`npm run build`, after tsc has written the declarations): the
// library and the two commands, bundled with their dependencies into a few files.
//
// Why a bundle: libp2p and its dependencies come in about 700 files. Node's loader keeps state
// for each, and loading them left enough survivors that V8 doubled the young generation. One
// agent with one tool used about 33 MB more than a stock SDK server unbundled and 8 MB more
// bundled, after 200 calls (bench/memory.ts; BENCHMARKS.md, "Memory").
//
// zod and the MCP SDK stay external: an agent's own zod schemas must be instances of the same zod
// (node.tool checks `instanceof z.ZodObject`), and the SDK shares them. The output is not minified,
// so stack traces stay readable; the source maps (not loaded unless --enable-source-maps) point
// back to src/.
//
// @opentelemetry/api stays external too: an application's tracing and the mesh's logs must read one
// API. Its globals are shared across copies of one major version, but a copy only accepts globals
// registered by an equal or newer minor version, so a bundled 1.10 would see no tracing set up by
// an application on 1.9; one copy in node_modules (npm dedupes it) avoids that.
//
// pino and pino-pretty are CommonJS that require Node's modules: the banner gives every output file
// a real `require` for esbuild's shim to use (ESM has none), so they stay bundled.
import { readdirSync, rmSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { build } from 'esbuild'

const result = await build({
  // issue-child: the "auto" provider runs it as its own process (the X.509 library stays out of agents).
  entryPoints: ['src/index.ts', 'src/cli/meshctl.ts', 'src/cli/mesh-bootstrap.ts', 'src/identity/issue-child.ts'],
  outbase: 'src',
  outdir: 'dist',
  bundle: true,
  splitting: true, // the commands and the library share one copy of the code
  chunkNames: 'chunks/[name]-[hash]',
  format: 'esm',
  platform: 'node',
  target: 'node22',
  // gRPC (the SPIRE provider, loaded only when used) and prom-client (metrics) are CommonJS that
  // requires Node's modules at run time, which an ESM bundle cannot. The OpenTelemetry API stays
  // one shared copy, the application's and ours (see README, Observability).
  external: ['zod', '@modelcontextprotocol/sdk', '@grpc/grpc-js', '@grpc/proto-loader', 'prom-client', '@opentelemetry/api'],
  banner: { js: "import { createRequire as __meshCreateRequire } from 'node:module'; const require = __meshCreateRequire(import.meta.url);" },
  sourcemap: true,
  metafile: true,
  logLevel: 'warning',
})

// JavaScript left in dist/ by an earlier build (chunks with old hashes, the unbundled layout) would
// never be loaded; remove it, and keep the declarations tsc wrote.
const outputs = new Set(Object.keys(result.metafile.outputs).map((f) => resolve(f)))
for (const entry of readdirSync('dist', { recursive: true, withFileTypes: true })) {
  const file = resolve(join(entry.parentPath, entry.name))
  if (entry.isFile() && /\.js(\.map)?$/.test(entry.name) && !outputs.has(file)) rmSync(file)
}
