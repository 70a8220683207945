#!/usr/bin/python3
"""Makes the image fixtures and the reference outputs the preprocessing tests compare against.

Run from anywhere: /usr/bin/python3 packages/imaging/src/__fixtures__/make-fixtures.py
(the tests only read the images and reference.json; this script is how they were made).
Needs Pillow and numpy; torch + torchvision for the torchvision references (Debian's python3-torch 1.13 /
python3-torchvision 0.14 were used). Source photos: scikit-image's sample data (public domain / CC0), found at
SKIMAGE_DATA below. Existing images are kept (JPEG bytes depend on the libjpeg build), references are always
recomputed from the committed files.

References: for each fixture and setting, the sha256 of the float32 HWC output the reference pipeline
produces, and a few values to make a mismatch readable.
- torchvision: Image.open(f).convert('RGB') -> Resize(round(size*256/224)) -> CenterCrop(size) -> ToTensor
  -> Normalize(mean, std), permuted to HWC.
- caffe (Keras VGG16): Image.open(f).convert('RGB').resize((size, size), BILINEAR) -> float32 array
  -> RGB->BGR -> subtract (103.939, 116.779, 123.68), as keras.applications.imagenet_utils does on numpy input.
"""
import hashlib
import json
import os
import struct
import zlib

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
SKIMAGE_DATA = '/tmp/dl/x/usr/lib/python3/dist-packages/skimage/data'


def out(name):
    return os.path.join(HERE, name)


def write_png16(path, arr):
    """A 16-bit PNG (gray or RGB) from a uint16 array: Pillow cannot write 16-bit RGB."""
    arr = np.ascontiguousarray(arr.astype('>u2'))
    h, w = arr.shape[:2]
    color_type = 0 if arr.ndim == 2 else 2
    raw = b''.join(b'\x00' + arr[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 16, color_type, 0, 0, 0))
    png += chunk(b'IDAT', zlib.compress(raw, 9)) + chunk(b'IEND', b'')
    with open(path, 'wb') as f:
        f.write(png)


def make_images():
    def src(name):
        return Image.open(os.path.join(SKIMAGE_DATA, name))

    def once(name, make):
        if not os.path.exists(out(name)):
            make(out(name))

    rng = np.random.default_rng(7)
    # A typical ImageNet-sized landscape JPEG (4:2:0, quality 85).
    once('landscape-500x375.jpg', lambda p: src('coffee.png').convert('RGB').crop((33, 0, 566, 400))
         .resize((500, 375), Image.LANCZOS).save(p, quality=85))
    # Portrait, progressive.
    once('portrait-300x450.jpg', lambda p: src('astronaut.png').convert('RGB').crop((100, 0, 441, 512))
         .resize((300, 450), Image.LANCZOS).save(p, quality=85, progressive=True))
    # Exactly 256x256: torchvision's Resize(256) is a no-op, only the crop and normalisation act.
    once('square-256.jpg', lambda p: src('chelsea.png').convert('RGB').crop((75, 0, 375, 300))
         .resize((256, 256), Image.LANCZOS).save(p, quality=90, subsampling=0))
    # 8-bit grayscale (mode L).
    once('gray-200x150.png', lambda p: src('camera.png').crop((56, 100, 456, 400)).resize((200, 150), Image.LANCZOS)
         .save(p, optimize=True))
    # Palette image (mode P), as shipped by scikit-image.
    once('palette-320x240.png', lambda p: src('green_palette.png').save(p))

    def palette_trns(p):
        im = src('chelsea.png').convert('RGB').resize((64, 48), Image.LANCZOS).quantize(16)
        im.info['transparency'] = 3  # palette entry 3 is transparent: convert('RGB') keeps its colour
        im.save(p, transparency=3)
    once('palette-trns-64x48.png', palette_trns)

    def rgba(p):
        rgb = np.asarray(src('chelsea.png').convert('RGB').resize((120, 90), Image.LANCZOS))
        alpha = np.full((90, 120, 1), 255, np.uint8)
        alpha[:, :40] = 0      # fully transparent, RGB kept: convert('RGB') must not blend it away
        alpha[:, 40:80] = 128  # half transparent
        Image.fromarray(np.concatenate([rgb, alpha], axis=2), 'RGBA').save(p, optimize=True)
    once('rgba-120x90.png', rgba)

    def gray_alpha(p):
        l = np.asarray(src('camera.png').resize((64, 48), Image.LANCZOS))
        a = np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))
        Image.fromarray(np.stack([l, a], axis=2), 'LA').save(p)
    once('gray-alpha-64x48.png', gray_alpha)

    def rgb16(p):
        rgb8 = np.asarray(src('coffee.png').convert('RGB').resize((96, 64), Image.LANCZOS)).astype(np.uint16)
        low = rng.integers(0, 256, size=rgb8.shape, dtype=np.uint16)  # low bytes that rounding would notice
        write_png16(p, rgb8 * 256 + low)
    once('rgb16-96x64.png', rgb16)

    def gray16(p):
        g8 = np.asarray(src('camera.png').resize((96, 64), Image.LANCZOS)).astype(np.uint16)
        low = rng.integers(0, 256, size=g8.shape, dtype=np.uint16)
        write_png16(p, g8 * 256 + low)
    once('gray16-96x64.png', gray16)

    # Animated GIF, 24 frames of 14x25: only the first frame counts (and it is upsampled).
    once('animated-14x25.gif', lambda p: open(p, 'wb').write(
        open(os.path.join(SKIMAGE_DATA, 'no_time_for_that_tiny.gif'), 'rb').read()))


def sha256(arr):
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def summary(hwc):
    return {
        'sha256': sha256(hwc.astype('<f4')),
        'shape': list(hwc.shape),
        'first': [float(v) for v in hwc.reshape(-1)[:6]],
        'channelMeans': [float(hwc[..., c].astype(np.float64).mean()) for c in range(3)],
    }


def torchvision_ref(path, size):
    import torchvision.transforms as T
    t = T.Compose([
        T.Resize(round(size * 256 / 224)),
        T.CenterCrop(size),
        T.ToTensor(),
        T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])
    chw = t(Image.open(path).convert('RGB'))
    return summary(chw.permute(1, 2, 0).contiguous().numpy())


def caffe_ref(path, size):
    img = Image.open(path).convert('RGB')
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    x = np.asarray(img, dtype=np.float32)[..., ::-1].copy()
    for c, m in enumerate([103.939, 116.779, 123.68]):
        x[..., c] -= m
    return summary(x)


# Where layertap deliberately differs from Pillow, the reference would be wrong: listed with the reason.
DEVIATIONS = {
    'gray16-96x64.png': 'Pillow opens 16-bit grayscale PNG as mode I;16 and convert("RGB") clips values above 255 '
                        'to white; layertap keeps the high byte, like Pillow does for 16-bit RGB.',
}


def main():
    make_images()
    files = sorted(f for f in os.listdir(HERE) if f.endswith(('.jpg', '.png', '.gif')))
    refs = {}
    for f in files:
        path = out(f)
        im = Image.open(path)
        entry = {
            'size': list(im.size),
            'mode': im.mode,
            'decodedRgbSha256': sha256(np.asarray(im.convert('RGB'), dtype=np.uint8)),
        }
        if f in DEVIATIONS:
            entry['deviation'] = DEVIATIONS[f]
        else:
            entry['torchvision224'] = torchvision_ref(path, 224)
            entry['caffe224'] = caffe_ref(path, 224)
            if f == 'landscape-500x375.jpg':
                entry['torchvision160'] = torchvision_ref(path, 160)
                entry['caffe64'] = caffe_ref(path, 64)
                # Pillow's bilinear resize alone (uint8 RGB): down, odd sizes, up, and one axis each way.
                rgb = im.convert('RGB')
                entry['pilBilinear'] = {
                    f'{w}x{h}': sha256(np.asarray(rgb.resize((w, h), Image.BILINEAR), dtype=np.uint8))
                    for (w, h) in [(341, 256), (123, 77), (700, 600), (500, 100), (37, 375), (1, 1)]
                }
        refs[f] = entry
    with open(out('reference.json'), 'w') as fh:
        json.dump({'generatedBy': 'make-fixtures.py', 'pillow': Image.__version__, 'files': refs}, fh, indent=1)
        fh.write('\n')
    for f in files:
        print(f, os.path.getsize(out(f)))


if __name__ == '__main__':
    main()
