#!/usr/bin/python3
"""ONNX Runtime from Python, on the graph layertap builds, for `node packages/engines/bench/engines.js --compare-ort-python`.

Runs the ONNX file engines.js wrote (the model cut at the layer, NHWC float32 input named `input`) with the
session options layertap's ONNX Runtime engine uses (intra-op threads, one inter-op thread, sequential,
all graph optimisations, no spinning), on one in-memory batch back to back for --seconds in --rounds rounds,
the way engines.js times layertap; prints one JSON line per batch. Needs the `onnxruntime` Python package
(not Debian's: a wheel, e.g. in a virtualenv with --system-site-packages for numpy).
"""
import argparse
import json
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--graph', required=True)
    parser.add_argument('--layer', required=True)
    parser.add_argument('--batches', default='1,16')
    parser.add_argument('--image-size', type=int, default=224)
    parser.add_argument('--seconds', type=float, default=6)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    session = ort.InferenceSession(args.graph, options, providers=['CPUExecutionProvider'])
    output = session.get_outputs()[0].name
    for batch in [int(b) for b in args.batches.split(',') if b]:
        size = args.image_size
        x = np.sin(np.arange(batch * size * size * 3, dtype=np.float32)).reshape(batch, size, size, 3) * 2
        session.run([output], {'input': x})
        rates = []
        for _ in range(args.rounds):
            images = 0
            began = time.perf_counter()
            while True:
                session.run([output], {'input': x})
                images += batch
                if time.perf_counter() - began >= args.seconds / args.rounds:
                    break
            rates.append(images / (time.perf_counter() - began))
        rates.sort()
        print(json.dumps({'engine': 'onnxruntime-python', 'threads': args.threads, 'layer': args.layer, 'batch': batch, 'imageSize': size,
                          'best': rates[-1], 'median': rates[len(rates) // 2], 'onnxruntime': ort.__version__}))


if __name__ == '__main__':
    main()
