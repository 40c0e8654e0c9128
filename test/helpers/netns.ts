// Hosts on one machine as Linux network namespaces joined by a bridge, for multi-host tests over
// real TCP. Links are cut with iptables and made lossy with nftables inside each host's namespace.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** One simulated host: its namespace and address. */
export interface Host {
  ns: string
  ip: string
  /** The prefix that runs a command inside this host (`ip netns exec <ns>`). */
  wrap: string[]
}

/** Why this machine cannot run the multi-host tests, or undefined when it can. */
export async function netnsMissing (): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, veth, iptables)'
  for (const [cmd, args] of [['ip', ['-V']], ['iptables', ['--version']], ['nft', ['--version']]] as const) {
    try {
      await run(cmd, [...args])
    } catch {
      return `${cmd} is not installed (Debian packages iproute2, iptables, nftables)`
    }
  }
  try {
    const probe = `mmprobe${process.pid % 100000}`
    await run('ip', ['netns', 'add', probe])
    await run('ip', ['netns', 'del', probe])
  } catch (err) {
    return `cannot create network namespaces here: ${(err as Error).message.split('\n')[0]}`
  }
  return undefined
}

/**
 * Creates `count` hosts on a bridge (10.<subnet>.0.1, .2, ...). Names are unique per run;
 * `cleanup` removes every namespace and link made (deleting a namespace removes its veth too).
 */
export async function createHosts (count: number): Promise<{ hosts: Host[], cleanup: () => Promise<void> }> {
  const tag = `mm${process.pid % 10000}${Math.floor(Math.random() * 100)}`
  const subnet = 100 + Math.floor(Math.random() * 100)
  const made: string[] = []
  const cleanup = async (): Promise<void> => {
    for (const ns of made.reverse()) await run('ip', ['netns', 'del', ns]).catch(() => {})
  }
  try {
    const sw = `${tag}-sw`
    await run('ip', ['netns', 'add', sw])
    made.push(sw)
    await run('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge'])
    await run('ip', ['-n', sw, 'link', 'set', 'br0', 'up'])
    const hosts: Host[] = []
    for (let i = 1; i <= count; i++) {
      const ns = `${tag}-h${i}`
      const veth = `${tag}v${i}`
      await run('ip', ['netns', 'add', ns])
      made.push(ns)
      await run('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
      await run('ip', ['link', 'set', veth, 'netns', sw])
      await run('ip', ['-n', sw, 'link', 'set', veth, 'master', 'br0', 'up'])
      const ip = `10.${subnet}.0.${i}`
      await run('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0'])
      await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up'])
      await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
      hosts.push({ ns, ip, wrap: ['ip', 'netns', 'exec', ns] })
    }
    return { hosts, cleanup }
  } catch (err) {
    await cleanup()
    throw err
  }
}

/** Drops every packet between `host` and these addresses, both ways (a firewall cut). */
export async function cut (host: Host, from: string[]): Promise<void> {
  for (const ip of from) {
    await run('ip', ['netns', 'exec', host.ns, 'iptables', '-A', 'INPUT', '-s', ip, '-j', 'DROP'])
    await run('ip', ['netns', 'exec', host.ns, 'iptables', '-A', 'OUTPUT', '-d', ip, '-j', 'DROP'])
  }
}

/** Removes every cut made on `host`. */
export async function uncut (host: Host): Promise<void> {
  await run('ip', ['netns', 'exec', host.ns, 'iptables', '-F'])
}

/** Drops `percent` % of the packets `host` receives, at random (nftables numgen). */
export async function lossy (host: Host, percent: number): Promise<void> {
  const nft = (...args: string[]) => run('ip', ['netns', 'exec', host.ns, 'nft', ...args])
  await nft('add', 'table', 'inet', 'meshloss')
  await nft('add', 'chain', 'inet', 'meshloss', 'input', '{ type filter hook input priority 0; }')
  await nft('add', 'rule', 'inet', 'meshloss', 'input', 'numgen', 'random', 'mod', '100', '<', String(percent), 'drop')
}

/** Removes the loss rule from `host`. */
export async function lossless (host: Host): Promise<void> {
  await run('ip', ['netns', 'exec', host.ns, 'nft', 'delete', 'table', 'inet', 'meshloss']).catch(() => {})
}
