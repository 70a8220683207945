import { connect } from 'node:net';
import { connect as connectTls } from 'node:tls';

/** A parsed RESP2 reply. Errors are values here (`RespError`), not exceptions, so a pipeline can be read whole. */
export type RespValue = string | number | null | RespError | RespValue[];

export class RespError {
  constructor(readonly message: string) {}
}

/** One command in RESP2 wire format: an array of bulk strings. */
export function encodeCommand(args: readonly string[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = Buffer.from(arg, 'utf8');
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Parses one reply starting at `offset`; `undefined` when the buffer does not hold all of it yet. */
export function parseReply(buf: Buffer, offset = 0): { value: RespValue; next: number } | undefined {
  const lineEnd = buf.indexOf('\r\n', offset);
  if (lineEnd < 0) return undefined;
  const type = String.fromCharCode(buf[offset] ?? 0);
  const line = buf.toString('utf8', offset + 1, lineEnd);
  const afterLine = lineEnd + 2;
  switch (type) {
    case '+':
      return { value: line, next: afterLine };
    case '-':
      return { value: new RespError(line), next: afterLine };
    case ':':
      return { value: Number(line), next: afterLine };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null, next: afterLine };
      if (buf.length < afterLine + length + 2) return undefined;
      return { value: buf.toString('utf8', afterLine, afterLine + length), next: afterLine + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, next: afterLine };
      const items: RespValue[] = [];
      let next = afterLine;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, next);
        if (!item) return undefined;
        items.push(item.value);
        next = item.next;
      }
      return { value: items, next };
    }
    default:
      throw new Error(`not a RESP reply: unexpected type byte ${JSON.stringify(type)}`);
  }
}

/**
 * Sends `commands` over one fresh connection and resolves with one reply per command. Enough for readiness
 * checks and tests; not a client (no reconnects, no pub/sub).
 */
export function sendCommands(
  port: number,
  commands: readonly (readonly string[])[],
  options: { host?: string; timeoutMs?: number; tls?: { ca: string | Buffer } } = {},
): Promise<RespValue[]> {
  const { host = '127.0.0.1', timeoutMs = 2000 } = options;
  return new Promise((resolve, reject) => {
    // With `tls`, the server's certificate is verified against `ca` (and the host name or IP).
    const socket = options.tls ? connectTls({ port, host, ca: options.tls.ca }) : connect({ port, host });
    let received = Buffer.alloc(0);
    const done = (err: Error | undefined, replies?: RespValue[]) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(replies ?? []);
    };
    const timer = setTimeout(() => done(new Error(`no reply from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    socket.once('error', (err) => done(err));
    socket.once('close', () => done(new Error(`connection to ${host}:${port} closed before all replies came`)));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const replies: RespValue[] = [];
      let offset = 0;
      try {
        while (replies.length < commands.length) {
          const reply = parseReply(received, offset);
          if (!reply) return;
          replies.push(reply.value);
          offset = reply.next;
        }
      } catch (err) {
        done(err as Error);
        return;
      }
      done(undefined, replies);
    });
    socket.write(Buffer.concat(commands.map(encodeCommand)));
  });
}
