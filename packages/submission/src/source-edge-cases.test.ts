import { pathToFileURL } from 'node:url';
import { resolveSource } from './source';
import { TempDir } from './__tests__/temp-dir';

let tmp: TempDir;
beforeEach(async () => {
  tmp = await TempDir.create();
});
afterEach(async () => {
  await tmp.remove();
});

it('reads a file:// source whose path needs percent-encoding', async () => {
  const list = await tmp.write('my set #1/list.txt', 'a.jpg\n');
  await tmp.write('my set #1/imgs/b.png', 'x');
  expect(await resolveSource(pathToFileURL(list).href)).toEqual([{ id: 'a', uri: pathToFileURL(tmp.path('my set #1/a.jpg')).href }]);
  expect(await resolveSource(pathToFileURL(tmp.path('my set #1/imgs')).href)).toEqual([{ id: 'b', uri: pathToFileURL(tmp.path('my set #1/imgs/b.png')).href }]);
});

it('reads a JSONL manifest that starts with a UTF-8 BOM', async () => {
  const manifest = await tmp.write('m.jsonl', '\uFEFF{"uri": "s3://b/a.jpg", "id": "first"}\n{"uri": "s3://b/b.jpg"}\n');
  expect(await resolveSource(manifest)).toEqual([
    { id: 'first', uri: 's3://b/a.jpg' },
    { id: 'b', uri: 's3://b/b.jpg' },
  ]);
});
