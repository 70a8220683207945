import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ErrorCode, ValidationError } from '@layertap/contracts';

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() === true;
}

/**
 * `mkdir -p` that always ends. Node's `mkdir(dir, { recursive: true })` loops for ever, at full CPU, where a
 * parent exists but the file system will not make the child and says ENOENT (`/proc/x`): here each level is
 * made once, and a level that still cannot be made under an existing parent is refused as a bad output.
 */
export async function makeDirectory(dir: string): Promise<void> {
  try {
    await mkdir(dir);
    return;
  } catch (err) {
    if (errnoCode(err) === 'EEXIST' && (await isDirectory(dir))) return;
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
  const parent = dirname(dir);
  if (parent === dir) throw new ValidationError(ErrorCode.InvalidOutput, `cannot make directory ${dir}: the root does not exist`);
  await makeDirectory(parent);
  try {
    await mkdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'EEXIST' && (await isDirectory(dir))) return;
    if (errnoCode(err) === 'ENOENT') {
      throw new ValidationError(ErrorCode.InvalidOutput, `cannot make directory ${dir}: the file system of ${parent} does not allow it (ENOENT)`, { cause: err });
    }
    throw err;
  }
}
