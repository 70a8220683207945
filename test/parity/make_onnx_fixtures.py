#!/usr/bin/python3
"""Writes test/fixtures/onnx/: small ONNX models for layertap's ONNX reader and graph cutter, and PyTorch
reference activations of one of them for the end-to-end parity test.

Run with Debian's Python (torch 1.13, torchvision 0.14, onnx 1.12, numpy, Pillow), not a virtualenv's:

    /usr/bin/python3 test/parity/make_onnx_fixtures.py

Files:

- `squeezenet1_1.onnx`: torchvision's squeezenet1_1 with seeded random weights (torch.manual_seed(0),
  weights=None), eval mode, opset 13, input `image` [N, 3, 224, 224] with a dynamic batch axis. The forward-hook
  outputs of features.3, features.7 and features.12 are ALSO graph outputs, so the graph holds tensors with
  those readable names that later nodes consume. Outputs: logits, features.3, features.7, features.12.
- `references/<image>/<name>.npy`: float32 PyTorch outputs (batch dim dropped) of features.3, features.12 and
  the logits for two photos of ../parity/images, preprocessed as torchvision does (Resize(256),
  CenterCrop(224), ToTensor, Normalize with ImageNet mean/std; Pillow); listed in `index.json`.
- `tiny.onnx`: a tiny conv model (Conv 3->4, Relu), one file. `tiny-external.onnx` + `tiny-external.data`: the
  same saved with its weights as external data. `tiny-two-inputs.onnx`: two image inputs (added). For the
  refusal tests.
"""
import json
import os
from pathlib import Path

import numpy as np
import onnx
import PIL
import torch
import torchvision
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from torchvision import transforms as T

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / 'test' / 'fixtures' / 'onnx'
IMAGES = REPO / 'test' / 'fixtures' / 'parity' / 'images'

HOOKED = ['features.3', 'features.7', 'features.12']
OUTPUT_NAMES = ['logits'] + HOOKED
REFERENCE_LAYERS = ['features.3', 'features.12', 'logits']
REFERENCE_IMAGES = ['chelsea-256', 'astronaut-320x213']
OPSET = 13

TORCHVISION = T.Compose([
    T.Resize(256),
    T.CenterCrop(224),
    T.ToTensor(),
    T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])


class Hooked(torch.nn.Module):
    """Runs the model and returns (logits, *outputs of the hooked modules), captured by forward hooks."""

    def __init__(self, model, names):
        super().__init__()
        self.model = model
        self.names = names
        self.captured = {}
        modules = dict(model.named_modules())
        for name in names:
            modules[name].register_forward_hook(self._hook(name))

    def _hook(self, name):
        def hook(_module, _inputs, output):
            # A Fire module's output is a torch.cat result nothing modifies in place afterwards: no clone
            # (a clone would put an extra node between the hooked tensor and its consumers).
            self.captured[name] = output
        return hook

    def forward(self, x):
        self.captured = {}
        logits = self.model(x)
        return (logits, *[self.captured[name] for name in self.names])


def squeezenet():
    torch.manual_seed(0)
    model = torchvision.models.squeezenet1_1(weights=None)
    model.eval()
    return model


def export_squeezenet(model):
    path = OUT / 'squeezenet1_1.onnx'
    wrapped = Hooked(model, HOOKED).eval()
    dummy = torch.zeros(1, 3, 224, 224)
    dynamic = {name: {0: 'N'} for name in ['image'] + OUTPUT_NAMES}
    with torch.no_grad():
        torch.onnx.export(wrapped, dummy, str(path), opset_version=OPSET, input_names=['image'],
                          output_names=OUTPUT_NAMES, dynamic_axes=dynamic, do_constant_folding=True)
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    return path, m


def save_npy(rel, array):
    path = OUT / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(array, dtype=np.float32))
    return rel


def references(model):
    wrapped = Hooked(model, HOOKED).eval()
    cases = []
    for stem in REFERENCE_IMAGES:
        img = Image.open(IMAGES / f'{stem}.png').convert('RGB')
        x = TORCHVISION(img).unsqueeze(0)
        with torch.no_grad():
            outs = dict(zip(OUTPUT_NAMES, [o.detach().clone()[0].numpy() for o in wrapped(x)]))
        layers = []
        for name in REFERENCE_LAYERS:
            a = outs[name].astype(np.float32)
            layers.append({
                'name': name,
                'shape': list(a.shape),
                'maxAbs': float(np.abs(a).max()),
                'file': save_npy(f'references/{stem}/{name}.npy', a),
            })
        case = {'image': stem, 'file': f'../parity/images/{stem}.png', 'width': img.width, 'height': img.height}
        # The VGG16 parity fixtures hold the same preprocessed input for some photos: named when identical.
        parity_input = REPO / 'test' / 'fixtures' / 'parity' / 'inputs' / f'{stem}.torchvision.npy'
        if parity_input.exists() and np.array_equal(np.load(parity_input), x[0].numpy()):
            case['input'] = {'file': f'../parity/inputs/{stem}.torchvision.npy', 'shape': list(x[0].shape)}
        case['layers'] = layers
        cases.append(case)
    return cases


def tiny_model(two_inputs=False):
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), 'conv.weight')
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), 'conv.bias')
    inputs = [helper.make_tensor_value_info('image', TensorProto.FLOAT, ['N', 3, 8, 8])]
    nodes = [
        helper.make_node('Conv', ['image', 'conv.weight', 'conv.bias'], ['conv'], name='conv', pads=[1, 1, 1, 1]),
        helper.make_node('Relu', ['conv'], ['relu'], name='relu'),
    ]
    out = 'relu'
    if two_inputs:
        inputs.append(helper.make_tensor_value_info('other', TensorProto.FLOAT, ['N', 4, 8, 8]))
        nodes.append(helper.make_node('Add', ['relu', 'other'], ['sum'], name='add'))
        out = 'sum'
    graph = helper.make_graph(nodes, 'tiny', inputs, [helper.make_tensor_value_info(out, TensorProto.FLOAT, ['N', 4, 8, 8])],
                              initializer=[w, b])
    m = helper.make_model(graph, producer_name='layertap-fixtures', opset_imports=[helper.make_opsetid('', OPSET)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    model = squeezenet()
    path, m = export_squeezenet(model)
    cases = references(model)

    onnx.save_model(tiny_model(), str(OUT / 'tiny.onnx'))
    onnx.save_model(tiny_model(two_inputs=True), str(OUT / 'tiny-two-inputs.onnx'))
    # Saved from inside OUT: the location is relative to the model file.
    cwd = os.getcwd()
    try:
        os.chdir(OUT)
        # onnx appends to an existing data file: start from none, so that a rerun gives the same files.
        Path('tiny-external.data').unlink(missing_ok=True)
        onnx.save_model(tiny_model(), 'tiny-external.onnx', save_as_external_data=True, all_tensors_to_one_file=True,
                        location='tiny-external.data', size_threshold=0)
    finally:
        os.chdir(cwd)

    index = {
        'description': 'torchvision squeezenet1_1 (seeded random weights) as ONNX, with PyTorch reference '
                       'activations; see test/parity/make_onnx_fixtures.py',
        'generator': '/usr/bin/python3 test/parity/make_onnx_fixtures.py',
        'versions': {'torch': torch.__version__, 'torchvision': torchvision.__version__, 'onnx': onnx.__version__,
                     'numpy': np.__version__, 'pillow': PIL.__version__},
        'model': {
            'file': path.name,
            'size': path.stat().st_size,
            'seed': 'torch.manual_seed(0); torchvision.models.squeezenet1_1(weights=None)',
            'opset': OPSET,
            'input': {'name': 'image', 'shape': ['N', 3, 224, 224], 'layout': 'NCHW'},
            'outputs': OUTPUT_NAMES,
        },
        'preprocess': {
            'kind': 'torchvision',
            'steps': 'Pillow RGB; Resize(256) (bilinear, shorter side); CenterCrop(224); ToTensor (/255); '
                     'Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])',
            'mean': [0.485, 0.456, 0.406],
            'std': [0.229, 0.224, 0.225],
            'resize': 256,
            'crop': 224,
        },
        'layout': 'references are float32, the batch dim dropped: (C, H, W) for features.*, (1000,) for logits',
        'cases': cases,
    }
    (OUT / 'index.json').write_text(json.dumps(index, indent=2) + '\n')
    for p in sorted(OUT.rglob('*')):
        if p.is_file():
            print(f'{p.relative_to(REPO)}  {p.stat().st_size}')


if __name__ == '__main__':
    main()
