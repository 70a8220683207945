#!/usr/bin/python3
"""Writes test/fixtures/hostile/: small PyTorch checkpoints, written by torch, whose declared shapes do not
follow their bytes (issue 18). Run with Debian's Python (python3-torch):

    /usr/bin/python3 test/parity/make_hostile_fixtures.py

- `expand-bomb.zip.pth`, `expand-bomb.legacy.pth`: `features.0.weight` is `torch.zeros(1).expand(64, 3, 3,
  1302083)`: one float of storage, strides (0, 0, 0, 0), 750M values (3 GB as float32) declared. torch.save
  keeps the view as it is. A reader that gathers before it checks takes memory and time that follow the
  shape, not the file.
"""
import os

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "hostile")
os.makedirs(OUT, exist_ok=True)

bomb = torch.zeros(1).expand(64, 3, 3, 1302083)
state = {"features.0.weight": bomb, "features.0.bias": torch.zeros(64)}
torch.save(state, os.path.join(OUT, "expand-bomb.zip.pth"))
torch.save(state, os.path.join(OUT, "expand-bomb.legacy.pth"), _use_new_zipfile_serialization=False)

for name in sorted(os.listdir(OUT)):
    print(name, os.path.getsize(os.path.join(OUT, name)))
