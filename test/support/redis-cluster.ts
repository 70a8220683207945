/**
 * A real Redis Cluster for tests: `size` `redis-server --cluster-enabled yes` processes on 127.0.0.1 (each
 * with its own client and cluster-bus port, picked free), joined with `redis-cli --cluster create`, every
 * node a master (no replicas). Needs `redis-server` and `redis-cli` 7+ on PATH (Debian: redis-server,
 * redis-tools).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { findFreePort, sendCommands } from '@layertap/devservices';

const run = promisify(execFile);
const HOST = '127.0.0.1';

export class TestRedisCluster {
  readonly ports: number[] = [];
  private readonly children: ChildProcess[] = [];
  private dir: string | undefined;
  private readonly killAll = () => {
    for (const c of this.children) c.kill('SIGKILL');
  };

  constructor(private readonly size = 3) {}

  /** `redis-cluster://127.0.0.1:p1,127.0.0.1:p2,...` */
  get url(): string {
    return `redis-cluster://${this.ports.map((p) => `${HOST}:${p}`).join(',')}`;
  }

  /** `host:port,host:port,...` (REDIS_CLUSTER_NODES). */
  get nodes(): string {
    return this.ports.map((p) => `${HOST}:${p}`).join(',');
  }

  async start(): Promise<void> {
    this.dir = await mkdtemp(path.join(tmpdir(), 'layertap-cluster-'));
    process.once('exit', this.killAll);
    const taken = new Set<number>();
    const freePort = async () => {
      for (;;) {
        const p = await findFreePort(HOST);
        if (!taken.has(p)) {
          taken.add(p);
          return p;
        }
      }
    };
    for (let i = 0; i < this.size; i++) {
      const port = await freePort();
      // The bus port is set explicitly: port + 10000 may be out of range for an ephemeral port.
      const busPort = await freePort();
      const dir = path.join(this.dir, String(port));
      await mkdir(dir);
      const child = spawn(
        'redis-server',
        [
          '--port', String(port), '--bind', HOST, '--cluster-enabled', 'yes', '--cluster-port', String(busPort),
          '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000', '--dir', dir,
          '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction', '--daemonize', 'no', '--logfile', '',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      this.children.push(child);
      this.ports.push(port);
    }
    await Promise.all(this.ports.map((p) => this.waitFor(p, ['PING'], (r) => r === 'PONG', 'PING')));
    await run('redis-cli', ['--cluster', 'create', ...this.ports.map((p) => `${HOST}:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 60_000 });
    // Every node must agree that all 16384 slots are served before clients use it.
    await Promise.all(this.ports.map((p) => this.waitFor(p, ['CLUSTER', 'INFO'], (r) => typeof r === 'string' && r.includes('cluster_state:ok'), 'cluster_state:ok')));
  }

  /** Each node's `CLUSTER NODES` line: id, address, flags, slots. */
  async clusterNodes(): Promise<string[]> {
    const [reply] = await sendCommands(this.ports[0]!, [['CLUSTER', 'NODES']], { host: HOST, timeoutMs: 2000 });
    return String(reply).trim().split('\n');
  }

  /** The keys a node holds matching `pattern` (KEYS is fine on a test cluster). */
  async keysOn(port: number, pattern: string): Promise<string[]> {
    const [reply] = await sendCommands(port, [['KEYS', pattern]], { host: HOST, timeoutMs: 2000 });
    return (reply as string[]).sort();
  }

  private async waitFor(port: number, command: string[], ok: (reply: unknown) => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const replies = await sendCommands(port, [command], { host: HOST, timeoutMs: 1000 }).catch(() => undefined);
      if (replies && ok(replies[0])) return;
      if (Date.now() > deadline) throw new Error(`redis cluster node ${port}: no ${what} within 30 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async close(): Promise<void> {
    await Promise.all(
      this.children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
            c.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            c.kill('SIGTERM');
          }),
      ),
    );
    process.off('exit', this.killAll);
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}
