#!/usr/bin/env python3
"""Which tables and indexes each SQLite commit wrote, read back from a WAL.

Usage: bench/wal-pages.py DIR [COMMITS]
DIR holds a copy of a data directory's sovereign.db and sovereign.db-wal, taken while a server runs (the pipeline
benchmark's is under $TMPDIR/sovereign-gwbench-*). Every frame of the WAL's current generation is mapped to the
table or index that owns its page (the dbstat virtual table, on a private copy opened with the WAL), and the last
COMMITS commits (default 400) are summed: frames per commit, and frames per commit by table or index.
"""
import collections
import os
import shutil
import sqlite3
import struct
import sys
import tempfile

directory = sys.argv[1]
last = int(sys.argv[2]) if len(sys.argv) > 2 else 400
name = next(f for f in os.listdir(directory) if f.endswith('.db'))
path = os.path.join(directory, name)
with open(path + '-wal', 'rb') as f:
    wal = f.read()
_, _, page_size, _, salt1, salt2, _, _ = struct.unpack('>IIIIIIII', wal[:32])
frames, offset = [], 32
while offset + 24 + page_size <= len(wal):
    page, commit_size, s1, s2 = struct.unpack('>IIII', wal[offset:offset + 16])
    if (s1, s2) != (salt1, salt2):
        break  # frames of an earlier generation: the WAL started over here
    frames.append((page, commit_size))
    offset += 24 + page_size

copy = tempfile.mkdtemp(prefix='wal-pages-')
for suffix in ('', '-wal'):
    shutil.copy(path + suffix, os.path.join(copy, name + suffix))
owner = {page: table for table, page in sqlite3.connect(os.path.join(copy, name)).execute('SELECT name, pageno FROM dbstat')}
shutil.rmtree(copy)

commits, current = [], []
for page, commit_size in frames:
    current.append(page)
    if commit_size:
        commits.append(current)
        current = []

tail = commits[-last:]
print(f'page size {page_size}, {len(frames)} frames, {len(commits)} commits; the last {len(tail)}:')
print('frames per commit (frames: commits):', sorted(collections.Counter(len(c) for c in tail).items()))
by_owner = collections.Counter(owner.get(page, f'page {page} (freed)') for c in tail for page in c)
for table, count in by_owner.most_common():
    print(f'  {table:40s} {count / len(tail):6.2f} frames per commit')
