#!/usr/bin/env python3
"""What one group commit's `fdatasync` costs on this disk, by how the segment file was made:
`append` (a new empty file, each write extending it, as the spool writes), `fallocate` (space
reserved, unwritten) or `prezeroed` (zeros written and synced first, then overwritten: no
metadata changes at commit). Writes a 6 000-byte record and syncs it, N times, in a file under
DIR (on the disk the spool would use), and prints a Markdown row of latency percentiles, ms.
    python3 bench/fsync-kinds.py DIR append|fallocate|prezeroed N
"""
import os
import sys
import time

directory, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
path = os.path.join(directory, f"seg-{mode}")
size = 64 << 20
if os.path.exists(path):
    os.remove(path)
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
if mode == "prezeroed":
    block = b"\0" * (1 << 20)
    for _ in range(size >> 20):
        os.write(fd, block)
    os.fsync(fd)
    os.lseek(fd, 0, 0)
elif mode == "fallocate":
    os.posix_fallocate(fd, 0, size)
    os.fsync(fd)
rec = os.urandom(20 * 300)
lat = []
for _ in range(n):
    t = time.perf_counter()
    os.write(fd, rec)
    os.fdatasync(fd)
    lat.append(time.perf_counter() - t)
lat.sort()


def q(p):
    return lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3


cells = [q(.5), q(.9), q(.99), q(.999), lat[-1] * 1e3]
print(f"| {mode} | {n} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
os.close(fd)
os.remove(path)
