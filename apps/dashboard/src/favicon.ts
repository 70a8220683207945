import { crc32, deflateSync } from 'node:zlib';

/** One PNG chunk: length, type, data, CRC of type and data. */
function chunk(type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([head, body, crc]);
}

/** A 16x16 RGBA PNG: three stacked bars, layertap's layers, in the dashboard's blue on transparency. */
function iconPng(): Buffer {
  const size = 16;
  const rows: Buffer[] = [];
  for (let y = 0; y < size; y++) {
    const row = Buffer.alloc(1 + size * 4); // filter byte 0, then RGBA
    const bar = y >= 2 && y <= 4 ? 2 : y >= 7 && y <= 9 ? 1 : y >= 12 && y <= 14 ? 0 : -1;
    for (let x = 0; x < size; x++) {
      // Each bar a little narrower than the one below: a stack of layers.
      if (bar >= 0 && x >= 1 + bar && x <= 14 - bar) row.set([0x25, 0x63, 0xeb, 0xff], 1 + x * 4);
    }
    rows.push(row);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 6, 0, 0, 0], 8); // 8-bit RGBA, no interlace
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header), chunk('IDAT', deflateSync(Buffer.concat(rows))), chunk('IEND', Buffer.alloc(0))]);
}

/** `/favicon.ico`: an ICO holding one PNG image (every browser since IE 9 reads PNG in ICO), made once. */
export function faviconIco(): Buffer {
  const png = iconPng();
  const dir = Buffer.alloc(6 + 16);
  dir.writeUInt16LE(0, 0); // reserved
  dir.writeUInt16LE(1, 2); // type: icon
  dir.writeUInt16LE(1, 4); // one image
  dir.set([16, 16, 0, 0], 6); // width, height, no palette, reserved
  dir.writeUInt16LE(1, 10); // colour planes
  dir.writeUInt16LE(32, 12); // bits per pixel
  dir.writeUInt32LE(png.length, 14);
  dir.writeUInt32LE(dir.length, 18); // where the PNG starts
  return Buffer.concat([dir, png]);
}
