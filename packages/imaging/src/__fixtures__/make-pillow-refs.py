#!/usr/bin/python3
"""Makes the fixtures of Pillow's decoding semantics that pillow-convert.test.ts compares against.

Run from anywhere: /usr/bin/python3 packages/imaging/src/__fixtures__/make-pillow-refs.py
Needs Pillow and numpy (Debian's Pillow 9.4 was used). Existing images are kept (JPEG bytes depend on the
libjpeg build); pillow-refs.json is always recomputed from the committed files.

- cmyk-120x90.jpg: a CMYK JPEG as Photoshop writes them (Adobe marker, inverted), with black ink rising from
  left to right so that K matters.
- exif6-96x64.jpg: a JPEG whose EXIF orientation is 6 (the camera was turned 90 degrees clockwise).
- gray16-96x64.png (made by make-fixtures.py): Pillow's mode I, which convert('RGB') clips at 255.
- ycck-64x48.jpg (made by make-ycck.c with libjpeg, as Pillow cannot write YCCK): a CMYK JPEG stored as YCCK,
  Adobe marker with transform 2, from known ink values.

For each: size, mode, and the sha256 of Image.open(f).convert('RGB') as HWC bytes, plus a few pixels.
"""
import hashlib
import json
import os

import numpy as np
import PIL
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def out(name):
    return os.path.join(HERE, name)


def make_images():
    if not os.path.exists(out('cmyk-120x90.jpg')):
        cmyk = np.array(Image.open(out('landscape-500x375.jpg')).convert('CMYK').resize((120, 90), Image.LANCZOS))
        cmyk[..., 3] = np.linspace(0, 200, 120).astype(np.uint8)[None, :]
        Image.fromarray(cmyk, 'CMYK').save(out('cmyk-120x90.jpg'), quality=92)
    if not os.path.exists(out('exif6-96x64.jpg')):
        im = Image.open(out('landscape-500x375.jpg')).convert('RGB').resize((96, 64), Image.LANCZOS)
        exif = Image.Exif()
        exif[0x0112] = 6
        im.save(out('exif6-96x64.jpg'), quality=92, exif=exif)


def reference(name):
    im = Image.open(out(name))
    rgb = np.asarray(im.convert('RGB'))
    return {
        'size': list(im.size),
        'mode': im.mode,
        'orientation': im.getexif().get(0x0112),
        'convertRgbSha256': hashlib.sha256(rgb.tobytes()).hexdigest(),
        'pixels': {f'{x},{y}': rgb[y, x].tolist() for x, y in [(0, 0), (60, 45), (119, 89), (95, 63), (40, 20), (63, 47)] if x < im.size[0] and y < im.size[1]},
    }


def main():
    make_images()
    names = ['cmyk-120x90.jpg', 'exif6-96x64.jpg', 'gray16-96x64.png', 'ycck-64x48.jpg']
    refs = {'generatedBy': 'make-pillow-refs.py', 'pillow': PIL.__version__, 'files': {n: reference(n) for n in names}}
    with open(out('pillow-refs.json'), 'w') as f:
        json.dump(refs, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()
