// Thin launcher shared by the commands: checks the Node version, then runs the compiled entry in
// dist/ (built by `npm install`, through the `prepare` script). Run through npm (npx meshctl) to
// use the project's pinned Node 24 when the machine's Node is older.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  console.error(`This command needs Node 22.19 or later (found ${process.versions.node}). Run it through npm, for example "npx meshctl", which uses the project's Node 24.`)
  process.exit(1)
}
export async function launch (entry) {
  await import(new URL(entry, import.meta.url).href)
}
