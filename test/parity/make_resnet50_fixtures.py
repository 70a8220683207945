#!/usr/bin/python3
"""Writes test/fixtures/parity/resnet50/: ResNet-50 references from torchvision for layertap's parity test.

Run with Debian's Python (torch 1.13, torchvision 0.14, numpy, Pillow):

    /usr/bin/python3 test/parity/make_resnet50_fixtures.py

The network is `torchvision.models.resnet50()` in eval mode with layertap's seeded formula weights (see
packages/model/src/random-weights.ts): every state_dict tensor by its own name, convs and fc Glorot-uniform
over torch-layout fans, fc.bias in +-0.01, BatchNorm weight and running_var 1 + uniform(+-0.5), bias and
running_mean uniform in +-0.1. layertap computes the same weights from `seed` and folds each BatchNorm into
its conv; torchvision runs them unfolded.

One real photo (chelsea-256.png) goes through both published preprocessings: IMAGENET1K_V1 (Resize(256),
CenterCrop(224)) and IMAGENET1K_V2 (Resize(232), CenterCrop(224)). The uint8 crop (what Pillow gives before
ToTensor) is stored, so the test normalises it exactly as ToTensor + Normalize do and compares the model alone
(layertap's resize is checked bit for bit against Pillow in packages/imaging). References are module outputs
from `register_forward_hook`, and for a node inside a block (`layer4.2.relu`) `create_feature_extractor`'s
(its node names are layertap's); ReLUs are made out-of-place so a BatchNorm's output is not overwritten before
it is read. Stored at a channel and spatial stride to stay small.
Everything written is listed in index.json. Deterministic: two runs give identical files.
"""
import json
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T
from torchvision.models.feature_extraction import create_feature_extractor


REPO = Path(__file__).resolve().parents[2]
OUT = REPO / 'test' / 'fixtures' / 'parity' / 'resnet50'
PHOTO = REPO / 'test' / 'fixtures' / 'parity' / 'images' / 'chelsea-256.png'
SEED = 5
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
PREPROCESSINGS = {'v1': 256, 'v2': 232}
# node -> (channel stride, spatial stride) of the stored reference.
NODES = {
    'bn1': (8, 4),
    'maxpool': (4, 2),
    'layer1.0.downsample.1': (8, 2),
    'layer2.0.bn2': (8, 1),
    'layer1': (8, 2),
    'layer2': (8, 2),
    'layer3.5': (8, 1),
    'layer3': (8, 1),
    'layer4.2.relu': (2, 1),
    'layer4': (4, 1),
    'avgpool': (1, 1),
    'fc': (1, 1),
}


def fnv1a32(text):
    h = 0x811C9DC5
    for b in text.encode('utf8'):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def fill(seed, name, n, limit):
    """The numpy recipe of randomWeight's TSDoc (as in make_fixtures.py)."""
    h = fnv1a32(f'{seed}:{name}')
    i = np.arange(1, n + 1, dtype=np.uint64)
    s = (np.uint64(h) + np.uint64(0x6D2B79F5) * i) & np.uint64(0xFFFFFFFF)
    t = ((s ^ (s >> np.uint64(15))) * (s | np.uint64(1))) & np.uint64(0xFFFFFFFF)
    t = ((t + (((t ^ (t >> np.uint64(7))) * (t | np.uint64(61))) & np.uint64(0xFFFFFFFF))) & np.uint64(0xFFFFFFFF)) ^ t
    u = (t ^ (t >> np.uint64(14))) / 2.0 ** 32
    return ((2 * u - 1) * limit).astype(np.float32)


def seeded_state_dict(model, seed):
    state = {}
    for name, tensor in model.state_dict().items():
        if name.endswith('num_batches_tracked'):
            state[name] = tensor
            continue
        shape = list(tensor.shape)
        n = int(np.prod(shape))
        module = name.rsplit('.', 1)[0]
        is_bn = isinstance(model.get_submodule(module), torch.nn.BatchNorm2d)
        if is_bn and (name.endswith('.weight') or name.endswith('.running_var')):
            values = fill(seed, name, n, 0.5) + np.float32(1)
        elif is_bn:
            values = fill(seed, name, n, 0.1)
        elif name.endswith('.bias'):
            values = fill(seed, name, n, 0.01)
        else:
            receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
            values = fill(seed, name, n, (6 / (receptive * (shape[0] + shape[1]))) ** 0.5)
        state[name] = torch.from_numpy(values.astype(np.float32).reshape(shape))
    return state


def main():
    torch.set_num_threads(2)
    OUT.mkdir(parents=True, exist_ok=True)
    model = torchvision.models.resnet50()
    model.load_state_dict(seeded_state_dict(model, SEED))
    model.eval()
    # torchvision's ReLUs are in place: a hook on a BatchNorm would see its output after the ReLU overwrote it.
    for module in model.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    # Module outputs through register_forward_hook (what PyTorch users hook); a node that is not a module's
    # single call (`layer4.2.relu` is the first of that ReLU's three calls) through create_feature_extractor,
    # one node per extractor (asked together with an enclosing module, FX returns another tensor for it).
    fx_nodes = [node for node in NODES if node.split('.')[-1].startswith('relu') and node.count('.') == 2]
    extractors = {node: create_feature_extractor(model, return_nodes={node: node}) for node in fx_nodes}
    hooked = {}
    for node in NODES:
        if node not in extractors:
            model.get_submodule(node).register_forward_hook(lambda _m, _i, out, node=node: hooked.__setitem__(node, out.clone()))
    index = {'seed': SEED, 'photo': PHOTO.name, 'imageSize': 224, 'mean': MEAN, 'std': STD, 'tolerance': {'maxAbsRelative': 1e-4},
             'torch': torch.__version__, 'torchvision': torchvision.__version__, 'cases': []}
    photo = Image.open(PHOTO).convert('RGB')
    for name, resize in PREPROCESSINGS.items():
        crop = T.CenterCrop(224)(T.Resize(resize)(photo))
        pixels = np.asarray(crop, dtype=np.uint8)  # H, W, 3
        crop_file = f'{name}.input.u8'
        (OUT / crop_file).write_bytes(pixels.tobytes())
        x = T.Normalize(MEAN, STD)(T.ToTensor()(crop)).unsqueeze(0)
        hooked.clear()
        with torch.no_grad():
            model(x)
            outputs = dict(hooked)
            for node, extractor in extractors.items():
                outputs[node] = extractor(x)[node]
        case = {'preprocess': name, 'resize': resize, 'input': crop_file, 'layers': []}
        for node, (cs, ss) in NODES.items():
            full = outputs[node][0].numpy()
            stored = full[::cs, ::ss, ::ss] if full.ndim == 3 else full[::cs]
            file = f'{name}.{node}.npy'
            np.save(OUT / file, np.ascontiguousarray(stored, dtype=np.float32))
            case['layers'].append({'node': node, 'file': file, 'shape': list(full.shape), 'channelStride': cs, 'spatialStride': ss,
                                   'maxAbs': float(np.abs(full).max())})
        index['cases'].append(case)
    (OUT / 'index.json').write_text(json.dumps(index, indent=2) + '\n')


if __name__ == '__main__':
    main()
