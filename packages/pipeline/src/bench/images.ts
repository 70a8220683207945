// Test photos for the benchmarks: real photographs (the CLI's samples) cut to many distinct files.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';

export interface GenerateImagesOptions {
  /** Directory of source photos (.jpg). */
  samplesDir: string;
  width?: number;
  height?: number;
  /** `jpeg` (quality 85-95) or `png` (lossless: larger files, slower to decode). Default jpeg. */
  format?: 'jpeg' | 'png';
}

const CROPS = ['centre', 'north', 'south', 'east', 'west', 'northeast', 'southwest'];

/**
 * Writes `count` photos (500x375 JPEGs by default) made from the sample photos: each scaled to cover the size
 * and cropped at one of seven positions, mirrored on alternate rounds, at varying quality, so that the files
 * differ. Returns their paths in name order.
 */
export async function generateImages(dir: string, count: number, options: GenerateImagesOptions): Promise<string[]> {
  const { width = 500, height = 375, format = 'jpeg' } = options;
  await mkdir(dir, { recursive: true });
  const photos = (await readdir(options.samplesDir)).filter((f) => f.endsWith('.jpg')).sort();
  if (photos.length === 0) throw new Error(`no .jpg photos in ${options.samplesDir}`);
  const sources = await Promise.all(photos.map((f) => readFile(path.join(options.samplesDir, f))));
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const round = Math.floor(i / sources.length);
    let image = sharp(sources[i % sources.length] as Buffer).resize(width, height, { fit: 'cover', position: CROPS[round % CROPS.length] as string });
    if (round % 2 === 1) image = image.flop();
    const encoded = format === 'png' ? image.png({ compressionLevel: 6 }) : image.jpeg({ quality: 85 + (i % 11) });
    const file = path.join(dir, `img-${String(i).padStart(5, '0')}.${format === 'png' ? 'png' : 'jpg'}`);
    await writeFile(file, await encoded.toBuffer());
    files.push(file);
  }
  return files;
}
