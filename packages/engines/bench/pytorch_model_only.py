#!/usr/bin/python3
"""PyTorch's model-only throughput for `node packages/engines/bench/engines.js --compare-pytorch`.

Times torchvision's model (random initialisation: speed does not depend on the values) in eval mode under
torch.no_grad() on one in-memory batch, run back to back for --seconds in --rounds rounds, the way engines.js
times layertap's engines; prints one JSON line per (layer, batch). Two patterns per layer:

  truncated  create_feature_extractor(model, [LAYER]): only the nodes the layer needs (what layertap builds);
  full       the whole model with a forward hook on LAYER (the usual snippet).

Layers are torchvision node names (resnet50: layer1 ... layer4, avgpool, fc; vgg16: features.N).
"""
import argparse
import json
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', default='resnet50')
    parser.add_argument('--layers', default='layer4')
    parser.add_argument('--batches', default='1,16')
    parser.add_argument('--image-size', type=int, default=224)
    parser.add_argument('--seconds', type=float, default=6)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--threads', type=int)
    args = parser.parse_args()
    import torch
    import torchvision
    from torchvision.models.feature_extraction import create_feature_extractor

    if args.threads:
        torch.set_num_threads(args.threads)
    model = getattr(torchvision.models, args.model)().eval()
    for layer in [s for s in args.layers.split(',') if s]:
        hooked = {}
        model.get_submodule(layer).register_forward_hook(lambda _m, _i, out: hooked.__setitem__('out', out))
        nets = {'truncated': create_feature_extractor(model, return_nodes=[layer]).eval(), 'full': model}
        for batch in [int(b) for b in args.batches.split(',') if b]:
            x = torch.randn(batch, 3, args.image_size, args.image_size)
            rates = {name: [] for name in nets}
            with torch.no_grad():
                for net in nets.values():
                    net(x)
                for _ in range(args.rounds):
                    for name, net in nets.items():
                        images = 0
                        began = time.perf_counter()
                        while True:
                            net(x)
                            images += batch
                            if time.perf_counter() - began >= args.seconds / args.rounds:
                                break
                        rates[name].append(images / (time.perf_counter() - began))
            for name, r in rates.items():
                r.sort()
                print(json.dumps({'engine': f'pytorch {name}', 'threads': torch.get_num_threads(), 'layer': layer, 'batch': batch,
                                  'imageSize': args.image_size, 'best': r[-1], 'median': r[len(r) // 2], 'torch': torch.__version__}))


if __name__ == '__main__':
    main()
