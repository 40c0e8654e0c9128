import { DEFAULT_TRUST_DOMAIN } from '../identity/spiffe-id.ts'

// Apart from ca.ts, which loads the X.509 library: only `meshctl ca` pays for it.
/** `meshctl ca --help`. */
export const CA_HELP = `Usage: meshctl ca <init|show|issue> [options]

The local certificate authority of the "auto" identity provider, one per trust domain, in
<home>/ca/<trust-domain>/ (key 0600). Whoever can read its key can mint any identity of the trust
domain: it is for one host and for development. Production uses certificate files, SPIRE or Vault.

  ca init                       creates the CA (or shows the one already there)
  ca show                       the CA: trust domain, subject, SHA-256 fingerprint, validity, files
  ca issue <agent-name> --out <dir> [--host <h>,...] [--ttl <hours>]
                                issues an X.509-SVID spiffe://<trust-domain>/agent/<agent-name> and
                                writes svid.pem, svid.key (0600) and bundle.pem to <dir>
                                (hosts default to localhost,127.0.0.1; ttl to 24)

  --trust-domain <td>           default "${DEFAULT_TRUST_DOMAIN}" (env MCP_MESH_TRUST_DOMAIN)
  --home <dir>                  default ~/.mcp-mesh (env MCP_MESH_HOME)
  --json                        machine-readable output`
