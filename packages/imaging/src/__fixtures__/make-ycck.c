/*
 * Writes ycck-64x48.jpg: a 4-component JPEG stored as YCCK (jpeg_set_colorspace(JCS_YCCK)) from known CMYK
 * ink values, with the Adobe marker and inverted values as Photoshop writes CMYK (stored = 255 - ink).
 * pillow-convert.test.ts decodes it with layertap and compares with Pillow's convert('RGB') of the same file
 * (make-pillow-refs.py records it in pillow-refs.json).
 *
 *   gcc -O2 -o /tmp/make-ycck make-ycck.c -ljpeg && /tmp/make-ycck ycck-64x48.jpg
 *
 * Ink: C rises left to right (0..252), M top to bottom (0..235), Y in four vertical bands (0, 85, 170, 255),
 * K in four horizontal bands (0, 60, 120, 180), so that every channel and the YCCK transform matter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <jpeglib.h>

#define W 64
#define H 48

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s out.jpg\n", argv[0]);
    return 2;
  }
  FILE *out = fopen(argv[1], "wb");
  if (!out) {
    perror(argv[1]);
    return 1;
  }
  struct jpeg_compress_struct cinfo;
  struct jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&cinfo);
  jpeg_stdio_dest(&cinfo, out);
  cinfo.image_width = W;
  cinfo.image_height = H;
  cinfo.input_components = 4;
  cinfo.in_color_space = JCS_CMYK;
  jpeg_set_defaults(&cinfo);
  jpeg_set_colorspace(&cinfo, JCS_YCCK); /* also writes the Adobe marker, transform 2 (YCCK) */
  jpeg_set_quality(&cinfo, 95, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  unsigned char row[W * 4];
  while (cinfo.next_scanline < H) {
    int y = (int)cinfo.next_scanline;
    for (int x = 0; x < W; x++) {
      int c = x * 4, m = y * 5, ye = (x / 16) * 85, k = (y / 12) * 60;
      row[x * 4 + 0] = (unsigned char)(255 - c);
      row[x * 4 + 1] = (unsigned char)(255 - m);
      row[x * 4 + 2] = (unsigned char)(255 - ye);
      row[x * 4 + 3] = (unsigned char)(255 - k);
    }
    JSAMPROW rows[1] = {row};
    jpeg_write_scanlines(&cinfo, rows, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  fclose(out);
  return 0;
}
