#!/usr/bin/python3
"""Writes test/fixtures/pth/: PyTorch checkpoints (.pth) for layertap's pickle-free reader, written by torch.

Run with Debian's Python (python3-torch 1.13, python3-torchvision, python3-h5py), not a virtualenv's:

    /usr/bin/python3 test/parity/make_pth_fixtures.py

Needs gcc and libssl-dev once, for sha256_prefix.c (see below). Output is deterministic: running the script
twice gives identical files (the slow hash search is skipped when the committed file already matches).

What it writes (index.json lists every file, its size and sha256, and the expected values):

- `vgg16-blocks1-2-seed11.zip.pth` and `.legacy.pth`: `torch.save(state_dict)` in the zip format (torch >= 1.6)
  and in the legacy format (`_use_new_zipfile_serialization=False`), holding the same seed-11 blocks-1-2
  weights as test/fixtures/parity/weights/vgg16-blocks1-2-seed11.torchvision.safetensors, with torchvision keys
  and a state_dict's `_metadata`. Through layertap they must give the parity reference
  `chelsea-256.torchvision.file-seed11/features.9.npy`. The zip file's end-of-central-directory comment (free
  bytes that zip readers, torch's included, ignore) is chosen so that its sha256 starts with `397923af`, the
  prefix torchvision's `check_hash` expects of `vgg16-397923af.pth`: a test server can publish it under that
  name and layertap's hash check passes for a genuine reason.
- `vgg16-block1-seed11.float16.zip.pth` and `.float16.legacy.pth`: blocks 1 only, as float16.
- `views.zip.pth`, `views.legacy.pth`: tensors that are views into one storage (offsets, strides, a transpose,
  a 0-d tensor), float16, bfloat16, float64 and int64 tensors; expected values in index.json.
- `torch01.legacy.pth`: the oldest legacy layout (torch 0.1-0.3, as torchvision's 2017 VGG files were written):
  tensors pickled as `torch.FloatTensor` + `__setstate__((storage, offset, size, stride))`, storages with
  view metadata. Checked here to load with torch.load as written.
- `malicious.zip.pth`, `malicious.legacy.pth`: a state_dict holding an object whose `__reduce__` is
  `os.system('touch "$LAYERTAP_PICKLE_MARKER"')`. Checked here: torch.load(weights_only=False) of each really
  creates the marker file, so a test that finds no marker after layertap read the file proves something.
- `references/coffee-224.caffe.file-seed11/features.9.npy`: torchvision's VGG16 with the seed-11 blocks 1-2 (and
  seed-7 elsewhere, which features.9 never reads) on the 224x224 photo in Keras "caffe" preprocessing, stored
  at every 4th row and column: what `--weights keras-imagenet` served by the .h5 fixture must give.
"""
import collections
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402  (the seeded weights, images and hooks of the parity fixtures)

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / 'test' / 'fixtures' / 'pth'
HERE = Path(__file__).resolve().parent
TORCHVISION_PREFIX = '397923af'
BLOCKS_1_2 = ['block1_conv1', 'block1_conv2', 'block2_conv1', 'block2_conv2']
CAFFE_STRIDE = 4


def state_dict(arrays, dtype=torch.float32):
    """An OrderedDict with a module's `_metadata`, as `model.state_dict()` returns it."""
    sd = collections.OrderedDict((k, torch.from_numpy(np.ascontiguousarray(v)).to(dtype)) for k, v in arrays.items())
    meta = collections.OrderedDict([('', {'version': 1}), ('features', {'version': 1})])
    for key in arrays:
        meta[key.rsplit('.', 1)[0]] = {'version': 1}
    sd._metadata = meta
    return sd


def save(obj, legacy):
    buffer = io.BytesIO()  # a buffer, so the zip's folder is "archive" whatever the file is called
    torch.save(obj, buffer, _use_new_zipfile_serialization=not legacy)
    return stable_legacy_keys(buffer.getvalue()) if legacy else buffer.getvalue()


def stable_legacy_keys(data):
    """The legacy format names storages by their memory address (`str(storage._cdata)`) and writes them in the
    sorted order of those names, so two runs differ. Renames them '0000', '0001', ... in the order the object's
    pickle first mentions them, and writes their data in that order; torch.load reads the result as before
    (the callers check). Nothing in the pickle is run: globals resolve to inert stand-ins."""
    import pickle
    import pickletools
    found = {}

    class Scan(pickle.Unpickler):
        def find_class(self, module, name):
            if module == 'torch' and name.endswith('Storage'):
                return getattr(torch, name)
            if (module, name) == ('collections', 'OrderedDict'):
                return collections.OrderedDict
            return lambda *args, **kwargs: None

        def persistent_load(self, pid):
            found.setdefault(pid[2], pid[1]().element_size())

    f = io.BytesIO(data)
    for _ in range(3):  # magic number, protocol version, sys info
        for op, _arg, _pos in pickletools.genops(f):
            if op.name == 'STOP':
                break
    start = f.tell()
    Scan(f).load()
    object_end = f.tell()
    keys = pickle.load(f)  # a list of strings
    at = f.tell()
    blocks = {}
    for key in keys:
        count = struct.unpack('<q', data[at:at + 8])[0]
        size = 8 + count * found[key]
        blocks[key] = data[at:at + size]
        at += size
    assert at == len(data) and set(found) == set(keys)
    rename = {key: f'{i:04d}' for i, key in enumerate(found)}
    head = data[start:object_end]
    for old, new in rename.items():
        o, n = old.encode(), new.encode()
        head = head.replace(b'X' + struct.pack('<I', len(o)) + o, b'X' + struct.pack('<I', len(n)) + n)
    order = sorted(found, key=lambda k: rename[k])
    return (data[:start] + head + pickle.dumps([rename[k] for k in order], protocol=2)
            + b''.join(blocks[k] for k in order))


def write(name, data):
    (OUT / name).write_bytes(data)
    return name


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------- the sha256 prefix

def with_comment(data, counter=b'0' * 16):
    """The zip with an end-of-central-directory comment whose last 16 bytes are a hex counter.

    The comment's text is padded so that everything from the last 64-byte boundary before the counter to
    the end of the file is under 56 bytes: each try of the search then costs one SHA-256 compression.
    """
    eocd = data[-22:]
    assert eocd[:4] == b'PK\x05\x06' and eocd[20:22] == b'\x00\x00', 'expected an end record without comment'
    for pad in range(64):
        text = b'layertap fixture: sha256 prefix ' + b'.' * pad + b' '
        total = len(data) + len(text) + 16
        if (total - 16) % 64 + 16 <= 55:
            break
    comment = text + counter
    return data[:-2] + struct.pack('<H', len(comment)) + comment


def force_prefix(data, prefix, existing):
    """Searches the comment's counter for a sha256 starting with `prefix` (minutes of one core) unless the
    committed file is this one already."""
    if existing is not None and existing[:-16] == with_comment(data)[:-16] and sha256(existing).startswith(prefix):
        return existing
    with tempfile.TemporaryDirectory() as tmp:
        tool = Path(tmp) / 'sha256_prefix'
        subprocess.run(['gcc', '-O2', '-o', str(tool), str(HERE / 'sha256_prefix.c'), '-lcrypto'], check=True)
        target = Path(tmp) / 'file.pth'
        target.write_bytes(with_comment(data))
        print(f'searching a zip comment for sha256 prefix {prefix} (a few minutes)...', flush=True)
        subprocess.run([str(tool), str(target), prefix], check=True)
        return target.read_bytes()


# --------------------------------------------------------------------------------------- special files

def views_state():
    base = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5) * 0.5 - 7
    sd = collections.OrderedDict()
    sd['contiguous'] = base
    sd['row'] = base[1]                      # offset 20
    sd['transposed'] = base.transpose(0, 2)  # strides (1, 5, 20)
    sd['strided'] = base[:, ::2, 1:4]        # offset 1, strides (20, 10, 1)
    sd['scalar'] = torch.tensor(3.25)
    half = torch.arange(6, dtype=torch.float16).reshape(2, 3) * 0.125 - 0.3
    sd['half_t'] = half.t()
    sd['bfloat16'] = torch.tensor([1.5, -2.0, 3.140625], dtype=torch.bfloat16)
    sd['double'] = torch.tensor([1.5, -2.25, 1e-3], dtype=torch.float64)
    sd['empty'] = torch.zeros(0, 4)
    sd['long'] = torch.tensor([1, 2, 3])
    return sd


def expected_values(sd):
    out = {}
    for key, t in sd.items():
        entry = {'shape': list(t.shape), 'dtype': str(t.dtype).replace('torch.', '')}
        if t.is_floating_point():
            entry['values'] = [float(v) for v in t.contiguous().to(torch.float64).flatten().tolist()]
        out[key] = entry
    return out


class _Legacy01Pickler:
    """torch 0.1-0.3's `torch.save`: tensors reduce to (torch.FloatTensor, (), (storage, offset, size, stride)),
    storages are persistent ids ('storage', type, root key, location, root size, view metadata)."""

    def __init__(self, f):
        import pickle
        self.f = f
        self.storages = {}
        self.keys = {}
        outer = self

        class P(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, _View):
                    key = outer.key_of(obj.root)
                    return ('storage', type_of(obj.root), key, 'cpu', obj.root.size(), (obj.key, obj.offset, obj.size))
                if isinstance(obj, torch.storage.TypedStorage):
                    return ('storage', type_of(obj), outer.key_of(obj), 'cpu', obj.size(), None)
                return None

            def reducer_override(self, obj):
                if isinstance(obj, _Tensor01):
                    return (tensor_type_of(obj.dtype), (), (obj.storage, obj.offset, tuple(obj.size), tuple(obj.stride)))
                return NotImplemented

        self.pickler_class = P

    def key_of(self, storage):
        # torch 0.1 used the storage's address (str(root._cdata)); a counter keeps the file deterministic.
        key = self.keys.setdefault(id(storage), str(1000 + len(self.keys)))
        self.storages[key] = storage
        return key


class _View:
    """A storage view, as torch 0.1 pickled them (a slice of a root storage, by element offset and size)."""

    def __init__(self, root, key, offset, size):
        self.root, self.key, self.offset, self.size = root, key, offset, size


class _Tensor01:
    def __init__(self, storage, offset, size, stride, dtype):
        self.storage, self.offset, self.size, self.stride, self.dtype = storage, offset, size, stride, dtype


def type_of(storage):
    return {torch.float32: torch.FloatStorage, torch.float16: torch.HalfStorage}[storage.dtype]


def tensor_type_of(dtype):
    return {torch.float32: torch.FloatTensor, torch.float16: torch.HalfTensor}[dtype]


def torch01_file():
    """A legacy file as torch 0.1-0.3 wrote it, with a storage view; returns (bytes, the tensors torch loads)."""
    import pickle
    root = torch.arange(24, dtype=torch.float32).mul(0.25).sub(2).storage()
    half_root = torch.tensor([0.5, -1.0, 2.0, 4.0], dtype=torch.float16).storage()
    view = _View(root, 'view-1', 4, 12)  # elements 4..15 of root
    sd = collections.OrderedDict()
    sd['features.0.weight'] = _Tensor01(root, 0, (2, 3, 2, 2), (12, 4, 2, 1), torch.float32)
    sd['features.0.bias'] = _Tensor01(view, 2, (2,), (3,), torch.float32)  # view elements 2 and 5: root 6 and 9
    sd['half'] = _Tensor01(half_root, 1, (3,), (1,), torch.float16)
    f = io.BytesIO()
    sys_info = dict(protocol_version=1001, little_endian=True, type_sizes=dict(short=2, int=4, long=4))
    pickle.dump(0x1950a86a20f9469cfc6c, f, protocol=2)
    pickle.dump(1001, f, protocol=2)
    pickle.dump(sys_info, f, protocol=2)
    legacy = _Legacy01Pickler(f)
    legacy.pickler_class(f, protocol=2).dump(sd)
    keys = sorted(legacy.storages)
    pickle.dump(keys, f, protocol=2)
    for key in keys:
        storage = legacy.storages[key]
        f.write(struct.pack('<q', storage.size()))
        f.write(torch.empty(0, dtype=storage.dtype).set_(storage).numpy().tobytes())
    data = f.getvalue()
    loaded = torch.load(io.BytesIO(data))
    assert torch.equal(loaded['features.0.bias'], torch.tensor([-0.5, 0.25])), loaded['features.0.bias']
    assert torch.equal(loaded['features.0.weight'].flatten(), torch.arange(24, dtype=torch.float32) * 0.25 - 2)
    return data, loaded


class Evil:
    def __reduce__(self):
        return (os.system, ('touch "$LAYERTAP_PICKLE_MARKER"',))


def malicious(legacy):
    sd = collections.OrderedDict()
    sd['features.0.weight'] = torch.zeros(64, 3, 3, 3)
    sd['features.0.bias'] = Evil()
    data = save(sd, legacy)
    # Prove the file is what it says: loading it the unsafe way runs the command.
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / 'marker'
        os.environ['LAYERTAP_PICKLE_MARKER'] = str(marker)
        try:
            torch.load(io.BytesIO(data), weights_only=False)
        finally:
            del os.environ['LAYERTAP_PICKLE_MARKER']
        assert marker.exists(), 'the malicious fixture did not run its command under torch.load'
    return data


# ---------------------------------------------------------------------------------------------------- main

def main():
    OUT.mkdir(parents=True, exist_ok=True)
    index = {
        'description': 'PyTorch .pth fixtures for layertap (see test/fixtures/pth/README.md)',
        'generator': '/usr/bin/python3 test/parity/make_pth_fixtures.py',
        'versions': {'torch': torch.__version__, 'numpy': np.__version__},
        'seed': mf.FILE_SEED,
        'weights': {},
        'files': {},
    }

    small = mf.tf_weights(mf.FILE_SEED, BLOCKS_1_2)
    tv = mf.to_torch(small)
    zip_name = f'vgg16-blocks1-2-seed{mf.FILE_SEED}.zip.pth'
    existing = (OUT / zip_name).read_bytes() if (OUT / zip_name).exists() else None
    zip_bytes = force_prefix(save(state_dict(tv), legacy=False), TORCHVISION_PREFIX, existing)
    legacy_bytes = save(state_dict(tv), legacy=True)
    for key, name, data, serialization in [
        ('zip', zip_name, zip_bytes, 'zip'),
        ('legacy', f'vgg16-blocks1-2-seed{mf.FILE_SEED}.legacy.pth', legacy_bytes, 'legacy'),
    ]:
        write(name, data)
        loaded = torch.load(OUT / name)
        assert list(loaded) == list(tv) and all(np.array_equal(loaded[k].numpy(), tv[k]) for k in tv)
        index['weights'][key] = {'file': name, 'size': len(data), 'sha256': sha256(data), 'serialization': serialization,
                                 'dtype': 'float32', 'seed': mf.FILE_SEED, 'layers': BLOCKS_1_2,
                                 'keys': list(tv), 'servesUpTo': 'block2_pool'}
    assert sha256(zip_bytes).startswith(TORCHVISION_PREFIX)
    assert zipfile.ZipFile(io.BytesIO(zip_bytes)).testzip() is None

    block1 = mf.to_torch(mf.tf_weights(mf.FILE_SEED, BLOCKS_1_2[:2]))
    for key, legacy in [('float16-zip', False), ('float16-legacy', True)]:
        name = f'vgg16-block1-seed{mf.FILE_SEED}.float16.{"legacy" if legacy else "zip"}.pth'
        data = save(state_dict(block1, torch.float16), legacy)
        loaded = torch.load(io.BytesIO(data))
        assert all(torch.equal(loaded[k], torch.from_numpy(v).half()) for k, v in block1.items())
        write(name, data)
        index['weights'][key] = {'file': name, 'size': len(data), 'sha256': sha256(data),
                                 'serialization': 'legacy' if legacy else 'zip', 'dtype': 'float16',
                                 'seed': mf.FILE_SEED, 'layers': BLOCKS_1_2[:2], 'keys': list(block1)}

    views = views_state()
    index['views'] = {'expected': expected_values(views), 'files': {}}
    for legacy in (False, True):
        name = f'views.{"legacy" if legacy else "zip"}.pth'
        data = save(views, legacy)
        loaded = torch.load(io.BytesIO(data))
        assert list(loaded) == list(views) and all(torch.equal(loaded[k], views[k]) for k in views)
        assert loaded['row'].storage_offset() == 20 and loaded['strided'].stride() == (20, 10, 1)
        write(name, data)
        index['views']['files']['legacy' if legacy else 'zip'] = name

    data, loaded = torch01_file()
    write('torch01.legacy.pth', data)
    index['torch01'] = {'file': 'torch01.legacy.pth', 'expected': expected_values(loaded)}

    index['malicious'] = {'global': 'posix.system', 'marker env': 'LAYERTAP_PICKLE_MARKER', 'files': {}}
    for legacy in (False, True):
        name = f'malicious.{"legacy" if legacy else "zip"}.pth'
        write(name, malicious(legacy))
        index['malicious']['files']['legacy' if legacy else 'zip'] = name

    # The Keras .h5 fixture in caffe preprocessing: what `--weights keras-imagenet` (served by a test server)
    # gives without --preprocess. Layers past block 2 keep seed 7; features.9 never reads them.
    all_layers = [c[0] for c in mf.CONVS] + [d[0] for d in mf.DENSES]
    model = mf.torch_model({**mf.tf_weights(mf.SEED, all_layers[4:]), **small})
    x = mf.caffe_input(mf.load_image('coffee-224'))
    full = mf.run_hooks(model, x, ['features.9'])['features.9']
    stored = full[:, ::CAFFE_STRIDE, ::CAFFE_STRIDE]
    ref_name = f'references/coffee-224.caffe.file-seed{mf.FILE_SEED}/features.9.npy'
    (OUT / ref_name).parent.mkdir(parents=True, exist_ok=True)
    np.save(OUT / ref_name, np.ascontiguousarray(stored, dtype=np.float32))
    index['caffeReference'] = {
        'image': 'coffee-224', 'preprocess': 'caffe', 'spec': 'features.9', 'canonical': 'block2_pool',
        'weights': '../parity/weights/vgg16-blocks1-2-seed11.keras.h5', 'shape': list(full.shape),
        'stride': CAFFE_STRIDE, 'storedShape': list(stored.shape), 'maxAbs': float(np.abs(full).max()), 'file': ref_name,
    }
    index['torchvisionReference'] = '../parity/references/chelsea-256.torchvision.file-seed11/features.9.npy'

    files = sorted(p for p in OUT.rglob('*') if p.is_file() and p.name not in ('index.json', 'README.md'))
    index['files'] = {str(p.relative_to(OUT)): p.stat().st_size for p in files}
    (OUT / 'index.json').write_text(json.dumps(index, indent=2) + '\n')
    total = sum(p.stat().st_size for p in OUT.rglob('*') if p.is_file())
    print(f'wrote {len(files) + 1} files, {total / 1e6:.2f} MB, to {OUT}')


if __name__ == '__main__':
    main()
