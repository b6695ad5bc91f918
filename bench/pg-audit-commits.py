#!/usr/bin/env python3
"""Each cluster member's decision commit, read back from the benchmark PostgreSQL's statement log.

Usage: bench/pg-audit-commits.py LOG [COMMITS]
LOG is the server log of a cluster benchmark run with SOVEREIGN_BENCH_PG_OPTIONS="-c log_min_duration_statement=0
-c log_line_prefix='%n [%p] '" and SOVEREIGN_BENCH_PG_LOG=LOG (bench/README.md). A transaction (BEGIN to COMMIT on one
backend) whose audit insert is an `inference.allowed` entry is the gateway's decision when its tenant is the
benchmark's (`stream-tenant`) and the node's own when it is `cluster-relay`. For the last COMMITS of each (default 100):
statements sent, BEGIN to COMMIT's end (the log's timestamps have millisecond resolution), the server's own time for
them (parse, bind, execute), and COMMIT alone (the WAL flush).
"""
import re
import statistics
import sys

log = sys.argv[1]
last = int(sys.argv[2]) if len(sys.argv) > 2 else 100
line_pattern = re.compile(r'^(\d+\.\d+) \[(\d+)\] (LOG|DETAIL):\s+(.*)$')
duration_pattern = re.compile(r'duration: ([\d.]+) ms\s+(statement|parse|bind|execute)[^:]*: (.*)')
open_transactions = {}
done = []
for line in open(log, errors='replace'):
    match = line_pattern.match(line)
    if not match:
        continue
    at, backend, kind, message = float(match.group(1)), match.group(2), match.group(3), match.group(4)
    transaction = open_transactions.get(backend)
    if kind == 'LOG':
        duration = duration_pattern.match(message)
        if not duration:
            continue
        ms, what, sql = float(duration.group(1)), duration.group(2), duration.group(3)
        if what == 'statement' and sql.startswith('BEGIN'):
            open_transactions[backend] = {'start': at - ms / 1000, 'statements': 0, 'server': ms, 'member': None}
            continue
        if transaction is None:
            continue
        transaction['server'] += ms
        if what in ('execute', 'statement'):
            transaction['statements'] += 1
        if what == 'statement' and sql.startswith('COMMIT'):
            transaction['end'], transaction['commit'] = at, ms
            if transaction['member']:
                done.append(transaction)
            open_transactions[backend] = None
    elif transaction is not None and transaction['member'] is None and 'inference.allowed' in message:
        transaction['member'] = 'gateway' if 'stream-tenant' in message else 'node' if 'cluster-relay' in message else None

for member in ('gateway', 'node'):
    commits = [t for t in done if t['member'] == member][-last:]
    if not commits:
        continue
    median = lambda key: statistics.median(t[key] for t in commits)
    wall = statistics.median((t['end'] - t['start']) * 1000 for t in commits)
    print(f"{member}: {len(commits)} decision commits; statements {median('statements'):g} (COMMIT included); "
          f"BEGIN to COMMIT done p50 {wall:.2f} ms; server time p50 {median('server'):.3f} ms; COMMIT p50 {median('commit'):.3f} ms")
