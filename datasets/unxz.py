"""unxz.py IN.xz OUT: unpack an xz file (the build's step for the bundled LM corpus).

Python's lzma module, so the build needs no xz program."""
import lzma
import os
import sys

src, dst = sys.argv[1], sys.argv[2]
tmp = dst + ".part"
with lzma.open(src, "rb") as f, open(tmp, "wb") as g:
    while True:
        block = f.read(1 << 20)
        if not block:
            break
        g.write(block)
os.replace(tmp, dst)
