#!/usr/bin/python3
"""Writes test/fixtures/hostile/hdf5-loop.h5: a Keras HDF5 file whose structure loops (issue 18). No h5py
needed; it patches the committed parity file test/fixtures/parity/weights/vgg16-blocks1-2-seed11.keras.h5:

    /usr/bin/python3 test/parity/make_hostile_h5.py

The root group's local heap (HDF5 "HEAP", version 0: data size, offset of the first free block, address of
the data) keeps a free list in its data: each free block starts with the offset of the next one (1 ends the
list) and its own size. The patch makes the first free block name itself as the next. HDF5 walks that list
when it loads the heap, to look up any name in the root group, and it allocates a node per step: h5wasm
loops until its 2 GB of wasm memory are spent (9.4 s and 2.2 GB of RSS on a 2-core machine), then fails with
a stack of HDF5 diagnostics.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "fixtures", "parity", "weights", "vgg16-blocks1-2-seed11.keras.h5")
OUT = os.path.join(HERE, "..", "fixtures", "hostile", "hdf5-loop.h5")
FREE_NULL = 1

data = bytearray(open(SOURCE, "rb").read())
at = data.find(b"HEAP")
while at >= 0:
    # Version 0 local heap, 8-byte lengths and addresses (the superblock of this file says so).
    size, free, segment = struct.unpack_from("<QQQ", data, at + 8)
    names = bytes(data[segment : segment + size])
    if free != FREE_NULL and free < size and b"block1_conv1\x00" in names:
        break
    at = data.find(b"HEAP", at + 4)
if at < 0:
    raise SystemExit("no root-group heap with a free block in " + SOURCE)

struct.pack_into("<Q", data, segment + free, free)  # the free block's "next" is itself
os.makedirs(os.path.dirname(OUT), exist_ok=True)
open(OUT, "wb").write(data)
print(f"{OUT}: heap at {at}, free block at data offset {free} now points to itself ({len(data)} bytes)")
