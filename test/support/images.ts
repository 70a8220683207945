/** Image files made for tests: a decompression bomb, and many small distinct JPEGs from the sample photos. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typed = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typed) >>> 0);
  return Buffer.concat([length, typed, crc]);
}

/**
 * A valid PNG, 1-bit grayscale, all black, of `width` x `height`: a few tens of kilobytes that decode to
 * `width * height` pixels (16000 x 16000 -> 30 KB on disk, 256 MP, 768 MB as RGB). Built by hand because
 * encoding it through an image library would itself need the memory the bomb is about.
 */
export function pngBomb(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // grayscale
  ihdr[10] = 0; // deflate
  ihdr[11] = 0; // adaptive filtering
  ihdr[12] = 0; // no interlace
  // Each scanline: filter byte 0 + ceil(width / 8) zero bytes.
  const raw = Buffer.alloc(height * (1 + Math.ceil(width / 8)));
  const idat = deflateSync(raw, { level: 9 });
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', idat),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/**
 * Writes `count` distinct small JPEGs (`width` x `height`) cut from `sources` at varying offsets and
 * scales into `dir`, named `img-00000.jpg`...; returns their paths.
 */
export async function makeVariants(sources: string[], dir: string, count: number, width = 64, height = 48): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  // Each source photo scaled once to a few sizes; crops then move over it.
  const bases: Array<{ data: Buffer; w: number; h: number }> = [];
  for (const source of sources) {
    for (const scale of [160, 224, 320]) {
      const { data, info } = await sharp(source).resize(scale, null).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      bases.push({ data, w: info.width, h: info.height });
    }
  }
  const files: string[] = [];
  const batch: Array<Promise<void>> = [];
  for (let i = 0; i < count; i++) {
    const base = bases[i % bases.length]!;
    const step = Math.floor(i / bases.length);
    const left = (step * 7) % (base.w - width);
    const top = (step * 5) % (base.h - height);
    const file = path.join(dir, `img-${String(i).padStart(5, '0')}.jpg`);
    files.push(file);
    batch.push(
      sharp(base.data, { raw: { width: base.w, height: base.h, channels: 3 } })
        .extract({ left, top, width, height })
        .jpeg({ quality: 85 })
        .toBuffer()
        .then((jpeg) => writeFile(file, jpeg)),
    );
    if (batch.length >= 32) await Promise.all(batch.splice(0));
  }
  await Promise.all(batch);
  return files;
}
