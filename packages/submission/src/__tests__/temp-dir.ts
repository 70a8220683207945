import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A fresh temp directory per test; `files` writes `relative path -> content` into it. */
export class TempDir {
  private constructor(readonly dir: string) {}

  static async create(): Promise<TempDir> {
    return new TempDir(await mkdtemp(path.join(tmpdir(), 'layertap-producer-test-')));
  }

  path(...parts: string[]): string {
    return path.join(this.dir, ...parts);
  }

  async write(relative: string, content: string | Buffer = ''): Promise<string> {
    const full = this.path(relative);
    await mkdir(path.dirname(full), { recursive: true });
    await writeFile(full, content);
    return full;
  }

  async files(entries: Record<string, string | Buffer>): Promise<void> {
    for (const [relative, content] of Object.entries(entries)) await this.write(relative, content);
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
