import { ErrorCode, ValidationError } from '@layertap/contracts';
import { randomBytes } from 'node:crypto';
import type { OutputWriter } from '../output-writer';

/** Tuning the contract tests ask for; writers without such a knob ignore it. */
export interface ContractWriterOptions {
  multipartThresholdBytes?: number;
  listPageSize?: number;
}

export interface OutputWriterHarness {
  /** A writer on a fresh, empty root of its own. */
  makeWriter(options?: ContractWriterOptions): Promise<OutputWriter>;
  /** A writer whose root cannot be written (missing bucket, path below a regular file). */
  makeUnwritable(): Promise<OutputWriter>;
  /** What `checkWritable()` on the unwritable writer must say. */
  unwritableMessage: RegExp;
}

async function putAll(writer: OutputWriter, keys: readonly string[], concurrency = 32): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const key = keys[next++] as string;
      await writer.put(key, key);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/**
 * The behaviour every OutputWriter must share, run against each implementation (against real storage:
 * a temp directory, a real s3rver).
 */
export function describeOutputWriterContract(name: string, harness: OutputWriterHarness): void {
  describe(`${name} (OutputWriter contract)`, () => {
    const opened: OutputWriter[] = [];
    async function writer(options?: ContractWriterOptions): Promise<OutputWriter> {
      const w = await harness.makeWriter(options);
      opened.push(w);
      return w;
    }
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((w) => w.close()));
    });

    it('round-trips buffers and strings byte for byte', async () => {
      const w = await writer();
      const bytes = randomBytes(70_000);
      await w.put('ds/block1_conv1/a.npy', bytes);
      await w.put('ds/manifest.jsonl', '{"id":"é"}\n');
      expect((await w.get('ds/block1_conv1/a.npy'))?.equals(bytes)).toBe(true);
      expect((await w.get('ds/manifest.jsonl'))?.toString('utf8')).toBe('{"id":"é"}\n');
      await w.put('ds/empty.json', '');
      expect(await w.get('ds/empty.json')).toEqual(Buffer.alloc(0));
    });

    it('stores a body given in parts as their concatenation (an .npy header and its values)', async () => {
      const w = await writer();
      const parts = [Buffer.from('head'), Buffer.alloc(0), randomBytes(300_000), Buffer.from('tail')];
      await w.put('ds/block2_pool/parts.npy', parts);
      expect((await w.get('ds/block2_pool/parts.npy'))?.equals(Buffer.concat(parts))).toBe(true);
      expect(await w.exists('ds/block2_pool/parts.npy', 300_008)).toBe(true);
    });

    it('answers undefined / false for a missing key, and for a "directory"', async () => {
      const w = await writer();
      expect(await w.get('ds/nothing.npy')).toBeUndefined();
      expect(await w.exists('ds/nothing.npy')).toBe(false);
      await w.put('ds/layer/x.npy', 'x');
      expect(await w.get('ds/layer')).toBeUndefined();
      expect(await w.exists('ds/layer')).toBe(false);
      expect(await w.get('ds/layer/x.npy/deeper')).toBeUndefined();
    });

    it('checks the size in exists()', async () => {
      const w = await writer();
      await w.put('ds/a.npy', Buffer.alloc(1234, 7));
      expect(await w.exists('ds/a.npy')).toBe(true);
      expect(await w.exists('ds/a.npy', 1234)).toBe(true);
      expect(await w.exists('ds/a.npy', 1233)).toBe(false);
      expect(await w.exists('ds/a.npy', 1235)).toBe(false);
      expect(await w.exists('ds/a.npy', 0)).toBe(false);
    });

    it('reads the first bytes of an object with head()', async () => {
      const w = await writer();
      const body = Buffer.from(Array.from({ length: 300 }, (_, i) => i % 256));
      await w.put('ds/h.npy', body);
      expect(await w.head('ds/h.npy', 128)).toEqual(body.subarray(0, 128));
      expect(await w.head('ds/h.npy', 1000)).toEqual(body);
      expect(await w.head('ds/missing.npy', 128)).toBeUndefined();
    });

    it('streams an object with read(): the same bytes, undefined when missing', async () => {
      const w = await writer();
      const body = randomBytes(300_000);
      await w.put('ds/manifest.jsonl', body);
      const chunks: Buffer[] = [];
      for await (const chunk of (await w.read('ds/manifest.jsonl'))!) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).equals(body)).toBe(true);
      // A large object arrives in pieces, so a reader can stop early without holding it all.
      expect(chunks.length).toBeGreaterThan(1);
      expect(await w.read('ds/missing.jsonl')).toBeUndefined();
      await w.put('ds/empty.jsonl', '');
      const empty: Buffer[] = [];
      for await (const chunk of (await w.read('ds/empty.jsonl'))!) empty.push(chunk as Buffer);
      expect(Buffer.concat(empty).length).toBe(0);
    });

    it('overwrites an existing object', async () => {
      const w = await writer();
      await w.put('ds/a.json', 'first version, longer');
      await w.put('ds/a.json', 'second');
      expect((await w.get('ds/a.json'))?.toString()).toBe('second');
      expect(await w.exists('ds/a.json', 6)).toBe(true);
      expect(await w.list('ds/')).toEqual(['ds/a.json']);
    });

    it('lists by string prefix, sorted, relative to the root', async () => {
      const w = await writer();
      const keys = ['ds/b/2.npy', 'ds/a/1.npy', 'ds/ab.json', 'dsx/a/1.npy', 'ds/a/sub/3.npy', 'other.json'];
      await putAll(w, keys);
      expect(await w.list('')).toEqual([...keys].sort());
      expect(await w.list('ds/')).toEqual(['ds/a/1.npy', 'ds/a/sub/3.npy', 'ds/ab.json', 'ds/b/2.npy']);
      expect(await w.list('ds/a')).toEqual(['ds/a/1.npy', 'ds/a/sub/3.npy', 'ds/ab.json']);
      expect(await w.list('ds/a/')).toEqual(['ds/a/1.npy', 'ds/a/sub/3.npy']);
      expect(await w.list('ds')).toEqual(['ds/a/1.npy', 'ds/a/sub/3.npy', 'ds/ab.json', 'ds/b/2.npy', 'dsx/a/1.npy']);
      expect(await w.list('nothing/')).toEqual([]);
    });

    it('lists across pages (small page size)', async () => {
      const w = await writer({ listPageSize: 7 });
      const keys = Array.from({ length: 25 }, (_, i) => `ds/_parts/${String(i).padStart(3, '0')}.jsonl`);
      await putAll(w, keys);
      await w.put('ds/manifest.jsonl', '');
      expect(await w.list('ds/_parts/')).toEqual(keys);
    });

    it('lists more than 1000 keys (the S3 page limit)', async () => {
      const w = await writer();
      const keys = Array.from({ length: 1005 }, (_, i) => `big/l/${String(i).padStart(5, '0')}.npy`);
      await putAll(w, keys, 64);
      const listed = await w.list('big/');
      expect(listed).toHaveLength(1005);
      expect(listed).toEqual(keys);
    });

    it('deletes, and deleting a missing key is fine', async () => {
      const w = await writer();
      await w.put('ds/a.npy', 'a');
      await w.put('ds/b.npy', 'b');
      await w.delete('ds/a.npy');
      await w.delete('ds/never.npy');
      expect(await w.get('ds/a.npy')).toBeUndefined();
      expect(await w.list('ds/')).toEqual(['ds/b.npy']);
    });

    it('stores a body above the multipart threshold intact', async () => {
      const w = await writer({ multipartThresholdBytes: 1024 * 1024 });
      const body = randomBytes(11 * 1024 * 1024 + 123);
      await w.put('ds/big.npy', body);
      expect(await w.exists('ds/big.npy', body.length)).toBe(true);
      expect((await w.get('ds/big.npy'))?.equals(body)).toBe(true);
    });

    it('refuses keys that could escape the root', async () => {
      const w = await writer();
      for (const key of ['', '../x', 'ds/../../x', '/etc/passwd', 'a//b', 'a/./b', 'a/', 'a\\b', 'a/.layertap-tmp-x', 'a\nb']) {
        const err = await w.put(key, 'x').catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ValidationError);
        expect(err).toMatchObject({ code: ErrorCode.InvalidOutput });
        expect((err as Error).message).toMatch(/^invalid output key/);
      }
      await expect(w.get('../x')).rejects.toBeInstanceOf(ValidationError);
      await expect(w.exists('../x')).rejects.toBeInstanceOf(ValidationError);
      await expect(w.delete('../x')).rejects.toBeInstanceOf(ValidationError);
      await expect(w.list('../')).rejects.toBeInstanceOf(ValidationError);
      expect(await w.list('')).toEqual([]);
    });

    it('gives full URIs for messages', async () => {
      const w = await writer();
      expect(w.urlFor('ds/l/a.npy')).toBe(`${w.uri}/ds/l/a.npy`);
    });

    it('checkWritable() passes on a writable root and leaves nothing behind', async () => {
      const w = await writer();
      await w.checkWritable();
      expect(await w.list('')).toEqual([]);
    });

    it('checkWritable() explains an unwritable root', async () => {
      const w = await harness.makeUnwritable();
      opened.push(w);
      const err = await w.checkWritable().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ValidationError);
      expect(err).toMatchObject({ code: ErrorCode.InvalidOutput });
      expect((err as Error).message).toMatch(harness.unwritableMessage);
    });
  });
}
