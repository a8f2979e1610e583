"""Resizes raw RGB8 pixels with Pillow's BILINEAR filter (the reference for
our CPU resize).

usage: pillow_resize.py IN.rgb W H OUT_W OUT_H OUT.rgb
"""
import sys

from PIL import Image

src, w, h, ow, oh, dst = sys.argv[1:7]
w, h, ow, oh = int(w), int(h), int(ow), int(oh)
img = Image.frombytes("RGB", (w, h), open(src, "rb").read())
open(dst, "wb").write(img.resize((ow, oh), Image.BILINEAR).tobytes())
