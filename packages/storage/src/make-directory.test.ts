import { mkdtemp, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ValidationError } from '@layertap/contracts';
import { makeDirectory } from './make-directory';

describe('makeDirectory', () => {
  it('makes every missing level, and accepts what exists', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'lt-mkdir-'));
    const deep = path.join(root, 'a', 'b', 'c');
    await makeDirectory(deep);
    expect((await stat(deep)).isDirectory()).toBe(true);
    await expect(makeDirectory(deep)).resolves.toBeUndefined();
    await Promise.all([1, 2, 3].map((i) => makeDirectory(path.join(root, 'x', 'y', String(i)))));
    expect((await stat(path.join(root, 'x', 'y', '3'))).isDirectory()).toBe(true);
  });

  it('ends with a bad-output error where the file system refuses the child of an existing parent (/proc), instead of spinning', async () => {
    const started = Date.now();
    const err = await makeDirectory('/proc/layertap-out/deeper').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).message).toBe('cannot make directory /proc/layertap-out: the file system of /proc does not allow it (ENOENT)');
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('reports a file in the way as the file system says', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'lt-mkdir-'));
    await writeFile(path.join(root, 'file'), 'x');
    await expect(makeDirectory(path.join(root, 'file', 'sub'))).rejects.toMatchObject({ code: 'ENOTDIR' });
  });
});
