import type { Logger } from '@layertap/config';

export interface LoginLimitOptions {
  /** Failed logins allowed from one client address per window (default 10). */
  maxFailures?: number;
  /** The window, in ms (default 60 000); a blocked address waits until its window ends. */
  windowMs?: number;
  /** Addresses tracked at most (default 10 000); the oldest are dropped first. */
  maxClients?: number;
  log?: Logger;
  now?: () => number;
}

interface Entry {
  failures: number;
  windowStart: number;
  logged: boolean;
}

/**
 * Counts failed logins per client address (the socket's, not X-Forwarded-For, which a client writes itself).
 * Past the limit, the address gets 429 until its window ends, right password or not, and one log line.
 */
export class LoginLimiter {
  private readonly clients = new Map<string, Entry>();
  private readonly maxFailures: number;
  private readonly windowMs: number;
  private readonly maxClients: number;
  private readonly now: () => number;

  constructor(private readonly options: LoginLimitOptions = {}) {
    this.maxFailures = options.maxFailures ?? 10;
    this.windowMs = options.windowMs ?? 60_000;
    this.maxClients = options.maxClients ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Seconds until `client` may try again, or 0 when it may now. */
  retryAfter(client: string): number {
    const entry = this.current(client);
    if (!entry || entry.failures < this.maxFailures) return 0;
    return Math.max(1, Math.ceil((entry.windowStart + this.windowMs - this.now()) / 1000));
  }

  /** Records a failed login from `client`. */
  fail(client: string): void {
    let entry = this.current(client);
    if (!entry) {
      if (this.clients.size >= this.maxClients) this.clients.delete(this.clients.keys().next().value as string);
      entry = { failures: 0, windowStart: this.now(), logged: false };
      this.clients.set(client, entry);
    }
    entry.failures++;
    if (entry.failures >= this.maxFailures && !entry.logged) {
      entry.logged = true;
      this.options.log?.warn({ client, failures: entry.failures, windowSeconds: this.windowMs / 1000 }, 'too many failed logins: refusing this client (429) until its window ends');
    }
  }

  private current(client: string): Entry | undefined {
    const entry = this.clients.get(client);
    if (entry && this.now() - entry.windowStart >= this.windowMs) {
      this.clients.delete(client);
      return undefined;
    }
    return entry;
  }
}
