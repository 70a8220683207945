#!/usr/bin/python3
"""Writes test/fixtures/parity/: photos, weight files and torchvision reference activations for layertap.

Run with Debian's Python (torch 1.13, torchvision 0.14, h5py, numpy, Pillow), not a virtualenv's:

    /usr/bin/python3 test/parity/make_fixtures.py [--skimage DIR]

The network is `torchvision.models.vgg16()` with layertap's seeded formula weights (see
packages/model/src/random-weights.ts: FNV-1a of "<seed>:<tensor>" seeding mulberry32, Glorot-uniform
kernels, biases in +-0.01, values in C order of the TF layout), moved to torch layout. layertap computes the
same weights itself from `--seed`, so seed 7 needs no file. The weight FILES (a Keras-layout .h5 and a
safetensors with torchvision keys) hold blocks 1-2 drawn with seed 11, so a test can tell the file's values
from the seed's.

Everything written is listed in index.json (the tests read only that). Output is deterministic: running the
script twice gives identical files.
"""
import argparse
import hashlib
import json
import math
import os
import struct
import sys
from pathlib import Path

import h5py
import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / 'test' / 'fixtures' / 'parity'
DEFAULT_SKIMAGE = Path('/tmp/dl/x/usr/lib/python3/dist-packages/skimage/data')

SEED = 7
FILE_SEED = 11
BIAS_LIMIT = 0.01
TOLERANCES = {
    # max |layertap - reference| <= maxAbsRelative * max |reference|, per layer, at the stored positions.
    'maxAbsRelative': 1e-4,
    # Photos that need a resize: cosine similarity of the flattened activations.
    'cosine': 0.999,
    # Photos that need a resize: mean |layertap input - torchvision input| over all values, on the [0, 1] pixel
    # scale (the normalised difference times the channel's std): 2/255.
    'preprocessMeanAbs': 2 / 255,
}

# (Keras layer, torchvision features index, in channels, out channels), in forward order.
CONVS = [
    ('block1_conv1', 0, 3, 64), ('block1_conv2', 2, 64, 64),
    ('block2_conv1', 5, 64, 128), ('block2_conv2', 7, 128, 128),
    ('block3_conv1', 10, 128, 256), ('block3_conv2', 12, 256, 256), ('block3_conv3', 14, 256, 256),
    ('block4_conv1', 17, 256, 512), ('block4_conv2', 19, 512, 512), ('block4_conv3', 21, 512, 512),
    ('block5_conv1', 24, 512, 512), ('block5_conv2', 26, 512, 512), ('block5_conv3', 28, 512, 512),
]
# (Keras layer, torchvision classifier index, in units, out units).
DENSES = [('fc1', 0, 512 * 7 * 7, 4096), ('fc2', 3, 4096, 4096), ('predictions', 6, 4096, 1000)]

# torchvision module -> layertap canonical name, for the hooks used here.
HOOKS = {
    'features.0': ('block1_conv1_preact', lambda m: m.features[0]),
    'features.4': ('block1_pool', lambda m: m.features[4]),
    'features.9': ('block2_pool', lambda m: m.features[9]),
    'features.16': ('block3_pool', lambda m: m.features[16]),
    'features.29': ('block5_conv3', lambda m: m.features[29]),
    'features.30': ('block5_pool', lambda m: m.features[30]),
    'classifier.4': ('fc2', lambda m: m.classifier[4]),
    'classifier.6': ('predictions', lambda m: m.classifier[6]),
}
# What the e2e test asks layertap for (layertap names the output folder by the spec as given).
SPEC_OF = {'features.30': 'block5_pool', 'classifier.4': 'fc2', 'classifier.6': 'predictions'}
# Row/column stride at which a reference is stored: features.0 in full would be 12.8 MB.
STRIDE = {'features.0': 4, 'features.9': 2, 'features.16': 2}

MAIN_LAYERS = ['features.0', 'features.9', 'features.16', 'features.29', 'features.30', 'classifier.4', 'classifier.6']
OTHER_LAYERS = ['features.16', 'classifier.4']

# name -> (source file, crop box in the source or None, final size or None). Sizes chosen so that
# torchvision mode needs no resize for the 256 photo and caffe mode none for the 224 photo; the others
# cover upscaling (landscape 320x213, portrait 240x360) and downscaling (500x375).
IMAGES = {
    'chelsea-256': ('chelsea.png', (110, 22, 366, 278), None),
    'coffee-224': ('coffee.png', (0, 0, 600, 400), (336, 224), (56, 0, 280, 224)),
    'astronaut-320x213': ('astronaut.png', (0, 60, 512, 401), (320, 213)),
    'rocket-240x360': ('rocket.jpg', (178, 0, 462, 427), (240, 360)),
    'motorcycle-500x375': ('motorcycle_left.png', (37, 0, 704, 500), (500, 375)),
}


# ---------------------------------------------------------------------------------------------- weights

def fnv1a32(text):
    h = 0x811C9DC5
    for b in text.encode('utf8'):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def fill(seed, name, n, limit, chunk=1 << 22):
    """The numpy recipe of randomWeight's TSDoc, in chunks (fc1 has 102M values)."""
    h = fnv1a32(f'{seed}:{name}')
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        i = np.arange(start + 1, stop + 1, dtype=np.uint64)
        s = (np.uint64(h) + np.uint64(0x6D2B79F5) * i) & np.uint64(0xFFFFFFFF)
        t = ((s ^ (s >> np.uint64(15))) * (s | np.uint64(1))) & np.uint64(0xFFFFFFFF)
        t = ((t + (((t ^ (t >> np.uint64(7))) * (t | np.uint64(61))) & np.uint64(0xFFFFFFFF))) & np.uint64(0xFFFFFFFF)) ^ t
        u = (t ^ (t >> np.uint64(14))) / 2.0 ** 32
        out[start:stop] = ((2 * u - 1) * limit).astype(np.float32)
    return out


def glorot_limit(shape):
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return math.sqrt(6 / (receptive * shape[-2] + receptive * shape[-1]))


def tf_weights(seed, layers):
    """`{'<layer>/kernel': [kh,kw,in,out] or [in,out], '<layer>/bias': [out]}` in TF layout, fc1 rows (H,W,C)."""
    shapes = {name: [3, 3, cin, cout] for name, _, cin, cout in CONVS}
    shapes.update({name: [cin, cout] for name, _, cin, cout in DENSES})
    weights = {}
    for layer in layers:
        kernel = shapes[layer]
        n = int(np.prod(kernel))
        weights[f'{layer}/kernel'] = fill(seed, f'{layer}/kernel', n, glorot_limit(kernel)).reshape(kernel)
        weights[f'{layer}/bias'] = fill(seed, f'{layer}/bias', kernel[-1], BIAS_LIMIT)
    return weights


def to_torch(weights):
    """TF layout -> torchvision state_dict entries (the inverse of layertap's safetensors conversion)."""
    state = {}
    for name, index, _, _ in CONVS:
        if f'{name}/kernel' not in weights:
            continue
        state[f'features.{index}.weight'] = np.ascontiguousarray(weights[f'{name}/kernel'].transpose(3, 2, 0, 1))
        state[f'features.{index}.bias'] = weights[f'{name}/bias']
    for name, index, cin, cout in DENSES:
        if f'{name}/kernel' not in weights:
            continue
        kernel = weights[f'{name}/kernel']
        if name == 'fc1':
            # Keras flattens (H,W,C), torchvision (C,H,W): row (h*7+w)*512+c moves to column c*49+h*7+w.
            kernel = kernel.reshape(7, 7, 512, cout).transpose(2, 0, 1, 3).reshape(cin, cout)
        state[f'classifier.{index}.weight'] = np.ascontiguousarray(kernel.T)
        state[f'classifier.{index}.bias'] = weights[f'{name}/bias']
    return state


def torch_model(weights):
    model = torchvision.models.vgg16(weights=None)
    state = {k: torch.from_numpy(v) for k, v in to_torch(weights).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    return model.eval()


def write_safetensors(path, tensors, metadata):
    header = {'__metadata__': metadata}
    offset = 0
    blobs = []
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype='<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(array.shape), 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(',', ':')).encode('utf8')
    text += b' ' * (-len(text) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def write_keras_h5(path, weights, layer_names):
    """The layout of keras-applications' vgg16_weights_tf_dim_ordering_tf_kernels*.h5 (Keras 2 save_weights)."""
    with h5py.File(path, 'w', libver='earliest') as f:
        f.attrs['layer_names'] = np.array([n.encode('utf8') for n in layer_names])
        f.attrs['backend'] = b'tensorflow'
        f.attrs['keras_version'] = b'2.2.4'
        for layer in layer_names:
            group = f.create_group(layer)
            if f'{layer}/kernel' not in weights:
                group.attrs['weight_names'] = np.array([], dtype='S1')
                continue
            group.attrs['weight_names'] = np.array([f'{layer}/kernel:0'.encode(), f'{layer}/bias:0'.encode()])
            inner = group.create_group(layer)
            inner.create_dataset('kernel:0', data=weights[f'{layer}/kernel'])
            inner.create_dataset('bias:0', data=weights[f'{layer}/bias'])


# ------------------------------------------------------------------------------------------------ images

def make_images(source_dir):
    """Crops the source photos into PNGs (lossless, so both sides decode the same pixels)."""
    images_dir = OUT / 'images'
    images_dir.mkdir(parents=True, exist_ok=True)
    for name, spec in IMAGES.items():
        target = images_dir / f'{name}.png'
        source = source_dir / spec[0] if source_dir else None
        if source is None or not source.exists():
            if not target.exists():
                sys.exit(f'{target} is missing and {source} is not there to make it from: pass --skimage DIR')
            continue
        img = Image.open(source).convert('RGB').crop(spec[1])
        if spec[2] is not None:
            img = img.resize(spec[2], Image.LANCZOS)
        if len(spec) > 3:
            img = img.crop(spec[3])
        img.save(target, optimize=False, compress_level=9)


def load_image(name):
    return Image.open(OUT / 'images' / f'{name}.png').convert('RGB')


TORCHVISION = T.Compose([
    T.Resize(256),
    T.CenterCrop(224),
    T.ToTensor(),
    T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])


def torchvision_input(img):
    return TORCHVISION(img)


def caffe_input(img):
    """Keras preprocess_input(mode='caffe') on a 224x224 photo: RGB -> BGR, minus the BGR means, 0-255 scale.

    The network gets channel 0 = blue, exactly what layertap's caffe mode feeds its TF.js model (whose
    first kernel's input axis is taken in the order it is given). So the torch model, holding the same
    weights, must get the same BGR tensor: no channel flip anywhere, in the input or the weights.
    """
    assert img.size == (224, 224), img.size
    rgb = np.asarray(img, dtype=np.uint8).astype(np.float32)
    bgr = rgb[:, :, ::-1] - np.array([103.939, 116.779, 123.68], dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)))


# -------------------------------------------------------------------------------------------- references

def run_hooks(model, x, specs):
    outputs = {}
    handles = []
    for spec in specs:
        _, module = HOOKS[spec]

        # features.0's output is rewritten in place by the inplace ReLU after it: clone inside the hook.
        def hook(_module, _inputs, output, spec=spec):
            outputs[spec] = output.detach().clone()[0].numpy().astype(np.float32)

        handles.append(module(model).register_forward_hook(hook))
    with torch.no_grad():
        model(x.unsqueeze(0))
    for handle in handles:
        handle.remove()
    return outputs


def save_npy(rel, array):
    path = OUT / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(array, dtype=np.float32))
    return rel


def references(case_id, outputs, specs):
    refs = []
    for spec in specs:
        full = outputs[spec]
        stride = STRIDE.get(spec, 1)
        stored = full[:, ::stride, ::stride] if full.ndim == 3 else full
        refs.append({
            'torchvision': spec,
            'spec': SPEC_OF.get(spec, spec),
            'canonical': HOOKS[spec][0],
            'shape': list(full.shape),
            'stride': stride,
            'storedShape': list(stored.shape),
            'maxAbs': float(np.abs(full).max()),
            'file': save_npy(f'references/{case_id}/{spec}.npy', stored),
        })
    return refs


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--skimage', type=Path, default=DEFAULT_SKIMAGE,
                        help="scikit-image's data folder (the source photos); without it the PNGs already in "
                             'test/fixtures/parity/images are used')
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    OUT.mkdir(parents=True, exist_ok=True)
    make_images(args.skimage if args.skimage.exists() else None)

    all_layers = [c[0] for c in CONVS] + [d[0] for d in DENSES]
    model = torch_model(tf_weights(SEED, all_layers))
    index = {
        'description': 'torchvision 0.14 VGG16 reference activations for layertap; see README.md',
        'generator': '/usr/bin/python3 test/parity/make_fixtures.py',
        'versions': {'torch': torch.__version__, 'torchvision': torchvision.__version__, 'numpy': np.__version__,
                     'pillow': PIL.__version__, 'h5py': h5py.__version__},
        'seed': SEED,
        'tolerances': TOLERANCES,
        'layout': 'references are float32 (C,H,W) or (C,); stored at every `stride`-th row and column '
                  '(ref[:, ::stride, ::stride]); `shape` is the full shape, `storedShape` what is in the file',
        'images': {},
        'weights': {},
        'cases': [],
    }
    for name in IMAGES:
        img = load_image(name)
        index['images'][name] = {'file': f'images/{name}.png', 'width': img.size[0], 'height': img.size[1]}

    # Seed 7, exact comparisons: the 256 photo in torchvision mode (crop only) and the 224 one in caffe mode.
    for name, mode, make_input in [('chelsea-256', 'torchvision', torchvision_input), ('coffee-224', 'caffe', caffe_input)]:
        case_id = f'{name}.{mode}.seed{SEED}'
        x = make_input(load_image(name))
        outputs = run_hooks(model, x, MAIN_LAYERS)
        index['cases'].append({
            'id': case_id, 'image': name, 'preprocess': mode, 'imageSize': 224, 'weights': {'seed': SEED},
            'check': 'maxAbsRelative',
            'input': {'file': save_npy(f'inputs/{name}.{mode}.npy', x.numpy()), 'shape': list(x.shape)},
            'references': references(case_id, outputs, MAIN_LAYERS),
        })

    # Photos that need a resize: torchvision's preprocessed input and two layers, compared by cosine.
    for name in ['astronaut-320x213', 'rocket-240x360', 'motorcycle-500x375']:
        case_id = f'{name}.torchvision.seed{SEED}'
        x = torchvision_input(load_image(name))
        outputs = run_hooks(model, x, OTHER_LAYERS)
        index['cases'].append({
            'id': case_id, 'image': name, 'preprocess': 'torchvision', 'imageSize': 224, 'weights': {'seed': SEED},
            'check': 'cosine',
            'input': {'file': save_npy(f'inputs/{name}.torchvision.npy', x.numpy()), 'shape': list(x.shape)},
            'references': references(case_id, outputs, OTHER_LAYERS),
        })
    del model

    # Weight files: blocks 1-2, seed 11, in the two layouts a user brings.
    small = tf_weights(FILE_SEED, ['block1_conv1', 'block1_conv2', 'block2_conv1', 'block2_conv2'])
    weights_dir = OUT / 'weights'
    weights_dir.mkdir(exist_ok=True)
    h5_path = weights_dir / f'vgg16-blocks1-2-seed{FILE_SEED}.keras.h5'
    write_keras_h5(h5_path, small, ['input_1', 'block1_conv1', 'block1_conv2', 'block1_pool',
                                    'block2_conv1', 'block2_conv2', 'block2_pool'])
    st_path = weights_dir / f'vgg16-blocks1-2-seed{FILE_SEED}.torchvision.safetensors'
    write_safetensors(st_path, to_torch(small), {
        'format': 'pt', 'source': f'layertap parity fixture: seeded formula weights, seed {FILE_SEED}, blocks 1-2'})
    for key, path, layout in [('keras-h5', h5_path, 'keras'), ('safetensors', st_path, 'torchvision')]:
        index['weights'][key] = {
            'file': str(path.relative_to(OUT)), 'size': path.stat().st_size, 'sha256': sha256(path),
            'keys': layout, 'seed': FILE_SEED, 'layers': [c[0] for c in CONVS[:4]], 'servesUpTo': 'block2_pool',
        }

    file_model = torch_model({**tf_weights(SEED, all_layers[4:]), **small})
    name = 'chelsea-256'
    case_id = f'{name}.torchvision.file-seed{FILE_SEED}'
    x = torchvision_input(load_image(name))
    outputs = run_hooks(file_model, x, ['features.9'])
    index['cases'].append({
        'id': case_id, 'image': name, 'preprocess': 'torchvision', 'imageSize': 224,
        'weights': {'files': ['keras-h5', 'safetensors']}, 'check': 'maxAbsRelative',
        'input': {'file': f'inputs/{name}.torchvision.npy', 'shape': list(x.shape)},
        'references': references(case_id, outputs, ['features.9']),
    })

    files = sorted(p for p in OUT.rglob('*') if p.is_file() and p.name not in ('index.json', 'README.md'))
    index['files'] = {str(p.relative_to(OUT)): p.stat().st_size for p in files}
    (OUT / 'index.json').write_text(json.dumps(index, indent=2) + '\n')
    total = sum(p.stat().st_size for p in OUT.rglob('*') if p.is_file())
    print(f'wrote {len(files) + 1} files, {total / 1e6:.2f} MB, to {OUT}')


if __name__ == '__main__':
    main()
