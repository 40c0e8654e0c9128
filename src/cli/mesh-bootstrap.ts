import { startBootstrap } from '../bootstrap/daemon.ts'
import { Exit, UsageError, commaList, parse } from './args.ts'
import { isMeshError } from '../errors.ts'
import { optionsFromEnv } from '../config.ts'

const HELP = `Usage: mesh-bootstrap [options]

Runs a bootstrap node: the door new agents join through. It is never in a call's path;
when every bootstrap is down, agents keep calling each other and join through any agent.

Options:
  --listen <multiaddr>    address to bind, repeatable (default /ip4/127.0.0.1/tcp/7946; env MCP_MESH_LISTEN)
  --announce <multiaddr>  address to advertise instead (containers, NAT; env MCP_MESH_ANNOUNCE)
  --mesh <name>           mesh name (default "default"; env MCP_MESH_NAMESPACE)
  --key-file <path>       identity key, created on first start (default <home>/bootstrap.key)
  --peer <multiaddr>      another bootstrap or agent of the same mesh, repeatable
  --json                  print the listening addresses as JSON
  -h, --help              this help

Prints its multiaddrs (with /p2p/<peer id>): give one to agents as MCP_MESH_BOOTSTRAP.
Exit codes: 0 stopped cleanly, 1 failed, 2 usage error.`

async function main (argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    listen: { type: 'string', multiple: true },
    announce: { type: 'string', multiple: true },
    mesh: { type: 'string' },
    'key-file': { type: 'string' },
    peer: { type: 'string', multiple: true },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  })
  if (values.help === true) { console.log(HELP); return Exit.ok }
  const listen = commaList(values.listen)
  // Flags win; the MCP_MESH_* variables (home, colocated, listen, ...) are read by config.ts, as
  // every agent reads them. Only the default port differs: a bootstrap needs a known address.
  const node = await startBootstrap({
    mesh: values.mesh,
    listen: listen.length > 0 ? listen : optionsFromEnv().listen === undefined ? ['/ip4/127.0.0.1/tcp/7946'] : undefined,
    announce: values.announce,
    keyFile: values['key-file'],
    bootstrap: values.peer,
  })
  if (values.json === true) console.log(JSON.stringify({ mesh: node.options.mesh, peerId: node.peerId, addrs: node.addrs, colocated: node.options.colocated, keyFile: node.options.keyFile }))
  else console.log(`mesh-bootstrap: mesh "${node.options.mesh}" listening on\n${node.addrs.map((a) => `  ${a}`).join('\n')}`)
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  await node.stop()
  return Exit.ok
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code }, (err: unknown) => {
  if (err instanceof UsageError) { console.error(`mesh-bootstrap: ${err.message}\n\n${HELP}`); process.exitCode = Exit.usage; return }
  console.error(`mesh-bootstrap: ${isMeshError(err) ? `${err.code}: ` : ''}${(err as Error).message}`)
  process.exitCode = Exit.failure
})
