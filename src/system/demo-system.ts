// The built-in demo system (`npm start`): two cells joined by an ivshmem-net
// link and a message channel. Filled in by the supervisor work below.
import { fileURLToPath } from 'node:url';

const demoCell = fileURLToPath(new URL('./demo-cell.js', import.meta.url));

/** The demo's system file; with namespaces each cell gets its own and the net link a TAP per side. */
export function demoSystemYaml(opts: { namespaces: boolean }): string {
  const ns = (n: string): string => (opts.namespaces ? `, netns: ivshm-demo-${n}` : '');
  return `# ivshm demo: two cells, an ivshmem-net link and a message channel
name: ivshm-demo
cells:
  - { name: alpha, command: node, args: [${JSON.stringify(demoCell)}, --role, ping]${ns('alpha')}, restart: always }
  - { name: beta, command: node, args: [${JSON.stringify(demoCell)}, --role, pong]${ns('beta')}, restart: always }
links:
  - name: net0
    kind: net
    outputSize: 256K
    members:
      - { cell: alpha, id: 0, interface: ivshm-a, address: 10.19.0.1/24 }
      - { cell: beta, id: 1, interface: ivshm-b, address: 10.19.0.2/24 }
  - name: chat
    kind: channel
    vectors: 2
    outputSize: 64K
    members: [{ cell: alpha, id: 0 }, { cell: beta, id: 1 }]
`;
}
