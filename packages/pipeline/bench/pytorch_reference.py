#!/usr/bin/python3
"""PyTorch references for `layertap bench --compare-pytorch`.

Runs one of the two patterns people use to get VGG16 activations with PyTorch, from JPEG files to one .npy
file per sample, and prints one JSON line of timings:

  seed       the usual snippet: the full torchvision.models.vgg16(), a forward hook on features[INDEX] that
             keeps the output, the whole forward pass (classifier included) run anyway;
  truncated  torchvision.models.vgg16().features[:INDEX + 1]: only the layers needed;
  pipeline   the same user's pipeline with the model replaced by zeros of the layer's shape (--shape): a
             DataLoader with --workers processes does the decoding and transforms, each batch's zeros are
             saved one .npy per sample (as --dtype). Its CPU time counts every process (the DataLoader's
             workers included), for `layertap bench --worker --engine null --compare-pytorch`.

Both load images with PIL and torchvision transforms (Resize(round(S * 256 / 224)), CenterCrop(S), ToTensor,
Normalize with the ImageNet mean and std), run batches of --batch-size under torch.no_grad(), and save each
sample with np.save. Weights are torchvision's random initialisation: speed does not depend on them.
The timed part starts at the first image read and ends after the last file is written (model construction
and one warm-up batch are timed separately), like layertap's end-to-end figure.
"""
import argparse
import json
import os
import resource
import sys
import time


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--images', help='directory of .jpg files (all are used, sorted by name)')
    parser.add_argument('--out', help='directory for the .npy files (created)')
    parser.add_argument('--mode', choices=['seed', 'truncated', 'pipeline'])
    parser.add_argument('--shape', help='pipeline mode: the stored shape of one sample, e.g. 128,56,56')
    parser.add_argument('--dtype', choices=['float32', 'float16'], default='float32', help='pipeline mode: stored dtype')
    parser.add_argument('--workers', type=int, default=2, help='pipeline mode: DataLoader worker processes')
    parser.add_argument('--index', type=int, help='torchvision features index, e.g. 9 for block2_pool')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--image-size', type=int, default=224)
    parser.add_argument('--threads', type=int, help='torch.set_num_threads (default: torch decides)')
    parser.add_argument('--device', default='cpu', help="torch device: cpu, cuda, or auto (cuda when available)")
    parser.add_argument('--check', action='store_true', help='print the versions as JSON and exit')
    return parser.parse_args()


def main():
    args = parse_args()
    import numpy as np
    import torch
    import torchvision
    from PIL import Image
    from torchvision import transforms

    versions = {'torch': torch.__version__, 'torchvision': torchvision.__version__, 'python': sys.version.split()[0]}
    if args.check:
        print(json.dumps(versions))
        return
    if args.mode == 'pipeline':
        if not (args.images and args.out and args.shape):
            sys.exit('--images, --out and --shape are required in pipeline mode')
        run_pipeline(args, versions)
        return
    if not (args.images and args.out and args.mode and args.index is not None):
        sys.exit('--images, --out, --mode and --index are required')
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'

    started = time.perf_counter()
    model = torchvision.models.vgg16()
    model.eval()
    model.to(device)
    captured = {}
    if args.mode == 'seed':
        net = model

        def hook(_module, _inputs, output):
            captured['features'] = output.detach()

        model.features[args.index].register_forward_hook(hook)
    else:
        net = model.features[: args.index + 1]
    size = args.image_size
    transform = transforms.Compose([
        transforms.Resize(round(size * 256 / 224)),
        transforms.CenterCrop(size),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])
    with torch.no_grad():
        net(torch.zeros(args.batch_size, 3, size, size, device=device))
    if device != 'cpu':
        torch.cuda.synchronize()
    build_s = time.perf_counter() - started

    files = sorted(f for f in os.listdir(args.images) if f.endswith(('.jpg', '.png')))
    os.makedirs(args.out, exist_ok=True)
    load_s = infer_s = save_s = 0.0
    cpu_began = time.process_time()
    began = time.perf_counter()
    for start in range(0, len(files), args.batch_size):
        names = files[start:start + args.batch_size]
        t0 = time.perf_counter()
        batch = torch.stack([transform(Image.open(os.path.join(args.images, name)).convert('RGB')) for name in names])
        t1 = time.perf_counter()
        with torch.no_grad():
            out = net(batch.to(device))
        features = captured['features'] if args.mode == 'seed' else out
        array = features.cpu().numpy()
        t2 = time.perf_counter()
        for j, name in enumerate(names):
            np.save(os.path.join(args.out, os.path.splitext(name)[0] + '.npy'), array[j])
        t3 = time.perf_counter()
        load_s += t1 - t0
        infer_s += t2 - t1
        save_s += t3 - t2
    wall_s = time.perf_counter() - began
    cpu_s = time.process_time() - cpu_began
    n = len(files)
    print(json.dumps({
        'mode': args.mode,
        'index': args.index,
        'images': n,
        'batchSize': args.batch_size,
        'threads': torch.get_num_threads(),
        'device': device,
        'buildSeconds': build_s,
        'seconds': wall_s,
        'imagesPerSecond': n / wall_s if wall_s > 0 else 0,
        'cpuPerSecond': cpu_s / wall_s if wall_s > 0 else 0,
        'msPerImage': {'load': 1000 * load_s / n, 'inference': 1000 * infer_s / n, 'save': 1000 * save_s / n},
        'shape': list(array.shape[1:]) if n else [],
        'peakRssMb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        'versions': versions,
    }))


class PhotoFolder:
    """The photos of a directory through torchvision's transforms, as a DataLoader dataset."""

    def __init__(self, directory, names, transform):
        self.directory, self.names, self.transform = directory, names, transform

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        from PIL import Image
        with Image.open(os.path.join(self.directory, self.names[i])) as image:
            return self.transform(image.convert('RGB'))


def run_pipeline(args, versions):
    """The user's pipeline around the model, the model replaced by zeros: DataLoader -> zeros -> np.save."""
    import numpy as np
    import torch
    from torchvision import transforms

    torch.set_num_threads(1)
    shape = [int(d) for d in args.shape.split(',')]
    size = args.image_size
    transform = transforms.Compose([
        transforms.Resize(round(size * 256 / 224)),
        transforms.CenterCrop(size),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])
    files = sorted(f for f in os.listdir(args.images) if f.endswith(('.jpg', '.png')))
    os.makedirs(args.out, exist_ok=True)
    dtype = np.float16 if args.dtype == 'float16' else np.float32
    # CPU of this process and of its reaped children: the DataLoader's workers are joined (so reaped) when
    # the loader is exhausted and deleted, before the second reading.
    def cpu_s():
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    cpu_began = cpu_s()
    began = time.perf_counter()
    loader = torch.utils.data.DataLoader(PhotoFolder(args.images, files, transform), batch_size=args.batch_size, num_workers=args.workers)
    save_s = 0.0
    k = 0
    for batch in loader:
        # The model, replaced: zeros of the layer's shape, as the model's output would be.
        array = torch.zeros(batch.shape[0], *shape).numpy().astype(dtype, copy=False)
        t0 = time.perf_counter()
        for j in range(array.shape[0]):
            np.save(os.path.join(args.out, os.path.splitext(files[k])[0] + '.npy'), array[j])
            k += 1
        save_s += time.perf_counter() - t0
    del loader
    wall_s = time.perf_counter() - began
    cpu = cpu_s() - cpu_began
    n = len(files)
    print(json.dumps({
        'mode': 'pipeline',
        'images': n,
        'batchSize': args.batch_size,
        'workers': args.workers,
        'dtype': args.dtype,
        'seconds': wall_s,
        'imagesPerSecond': n / wall_s if wall_s > 0 else 0,
        'cpuSeconds': cpu,
        'cpuMsPerImage': 1000 * cpu / n if n else 0,
        'saveMsPerImage': 1000 * save_s / n if n else 0,
        'shape': shape,
        'versions': versions,
    }))


if __name__ == '__main__':
    main()
