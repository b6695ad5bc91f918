#!/usr/bin/env python3
"""Hop timeline of cluster-streaming's requests from syscall tracepoints (see cluster-hops.sh).

map BENCH GW NODE GWPORT NODEPORT: names each socket of the three processes (JSON): the client's connections to the
gateway (C) and to the node (D), the gateway's accepted ones (Gin) and its relay connections (Gout), the node's accepted
ones from the gateway (Nin) or the client (Nd); every other connection by its remote port (gx<port>, nx<port>: the
database, Redis, Orleans).
report PERF_SCRIPT CONNECTIONS [K]: medians, per path, of the time between each process's first successful read and
its writes, and of each hop (a write to the reading process's read of it: wake-up included), for the first K bursts
of writes (writes within 50 us merged); the gateway's other connections while it holds a request before the relay;
and, per path, each member's conversations with the database, Redis or Orleans between reading the request and writing
the first content (write #2): how many writes, when the last answer came (a commit's end) and how long before write #2
(0.2-0.3 ms: the content waited for that commit; more: it did not). "Outside the node": each path's client read
minus the node's own time from having the whole request (its last read before its first write) to its write: what the
path adds around the node.
Bursts are paired by their order, so #1 is exact; a later one can pair a write with another burst's read (a burst that
the reader took in two reads, or two it took in one), which shows as negative steps: read the first ones."""
import json, os, re, statistics, sys
from collections import defaultdict


def sockets(pid, inodes):
    out = {}
    for fd in os.listdir(f'/proc/{pid}/fd'):
        try:
            link = os.readlink(f'/proc/{pid}/fd/{fd}')
        except OSError:
            continue
        if link.startswith('socket:[') and link[8:-1] in inodes:
            out[int(fd)] = inodes[link[8:-1]]
    return out


def map_connections(bench, gw, node, gwport, nodeport):
    inodes = {}
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        for row in open(table).readlines()[1:]:
            f = row.split()
            inodes[f[9]] = (int(f[1].split(':')[-1], 16), int(f[2].split(':')[-1], 16))
    gw_out = {local for local, remote in sockets(gw, inodes).values() if remote == nodeport}
    result = {}
    names = {}
    for fd, (local, remote) in sockets(bench, inodes).items():
        if remote in (gwport, nodeport):
            names[fd] = 'C' if remote == gwport else 'D'
    result[bench] = {'role': 'client', 'fds': names}
    names = {}
    for fd, (local, remote) in sockets(gw, inodes).items():
        if local == gwport and remote:
            names[fd] = 'Gin'
        elif remote == nodeport:
            names[fd] = 'Gout'
        elif remote:
            names[fd] = f'gx{remote}'
    result[gw] = {'role': 'gateway', 'fds': names}
    names = {}
    for fd, (local, remote) in sockets(node, inodes).items():
        if local == nodeport and remote:
            names[fd] = 'Nin' if remote in gw_out else 'Nd'
        elif remote:
            names[fd] = f'nx{remote}'
    result[node] = {'role': 'node', 'fds': names}
    print(json.dumps(result))


def report(script, connections, k):
    table = json.load(open(connections))
    roles = {int(p): v['role'] for p, v in table.items()}
    fds = {int(p): {int(f): n for f, n in v['fds'].items()} for p, v in table.items()}
    pattern = re.compile(r'(\d+)/(\d+)\s+([\d.]+):\s+syscalls:sys_(enter|exit)_(\w+):\s*(.*)$')
    pending, events = {}, []
    for line in open(script):
        m = pattern.search(line)
        if not m:
            continue
        pid, tid, t, edge, call, rest = m.groups()
        pid, tid = int(pid), int(tid)
        if pid not in roles:
            continue
        if edge == 'enter':
            fd = re.search(r'fd: (0x[0-9a-f]+)', rest)
            name = fds[pid].get(int(fd.group(1), 16)) if fd else None
            if name is not None:
                pending[tid] = (name, call)
            continue
        if tid not in pending:
            continue
        name, call = pending.pop(tid)
        ret = re.search(r'0x([0-9a-f]+)', rest)
        value = int(ret.group(1), 16) if ret else -1
        if value >= 1 << 63:
            value -= 1 << 64
        if value > 0:  # EAGAIN and closed reads are not data
            events.append((float(t) * 1000, roles[pid], name, 'r' if call.startswith('re') else 'w'))
    events.sort()
    requests, current = [], None
    for e in events:
        if e[1] == 'client' and e[3] == 'w' and e[2] in ('C', 'D') and (current is None or current['path'] != e[2] or e[0] - current['t0'] > 0.5):
            current = {'path': e[2], 't0': e[0], 'ev': []}
            requests.append(current)
        if current is not None:
            current['ev'].append(e)

    def bursts(ev, role, name, kind):
        out, last = [], None
        for t, r, n, k2 in ev:
            if (r, n, k2) == (role, name, kind):
                if last is None or t - last > 0.05:
                    out.append(t)
                last = t
        return out

    def talks(stats, label, ev, role, start, end):
        # Its conversations with the database, Redis or Orleans between reading the request and writing the first
        # content (#2): how many writes, and when the last answer came (a commit's end), from the request's read.
        held = [e for e in ev if e[1] == role and e[2][1:2] == 'x' and start <= e[0] <= end]
        for port in sorted({e[2] for e in held}):
            writes = [e[0] for e in held if e[2] == port and e[3] == 'w']
            reads = [e[0] for e in held if e[2] == port and e[3] == 'r']
            stats[f'{label}: writes to {port} before write #2'].append(len(writes))
            if reads:
                stats[f'{label}: read to last answer of {port} before write #2'].append(reads[-1] - start)
                stats[f'{label}: last answer of {port} to write #2'].append(end - reads[-1])

    stats = defaultdict(list)
    for q in requests[1:-1]:  # the first and last may be cut by the recording's edges
        ev, t0 = q['ev'], q['t0']
        if q['path'] == 'C':
            g_in, g_out = bursts(ev, 'gateway', 'Gin', 'r'), bursts(ev, 'gateway', 'Gout', 'w')
            n_in, n_out = bursts(ev, 'node', 'Nin', 'r'), bursts(ev, 'node', 'Nin', 'w')
            g_rd, g_wr, c_rd = bursts(ev, 'gateway', 'Gout', 'r'), bursts(ev, 'gateway', 'Gin', 'w'), bursts(ev, 'client', 'C', 'r')
            if not (g_in and g_out and n_in and min(len(n_out), len(g_rd), len(g_wr), len(c_rd)) >= k):
                continue
            stats['relayed: client write to gateway read'].append(g_in[0] - t0)
            stats['relayed: gateway read to relay written (its hold)'].append(g_out[0] - g_in[0])
            stats['relayed: relay written to node read'].append(n_in[0] - g_out[0])
            held = [e for e in ev if e[1] == 'gateway' and e[2].startswith('gx') and g_in[0] <= e[0] <= g_out[0]]
            for port in sorted({e[2] for e in held}):
                writes = [e[0] for e in held if e[2] == port and e[3] == 'w']
                reads = [e[0] for e in held if e[2] == port and e[3] == 'r']
                stats[f'relayed: gateway hold, writes to {port}'].append(len(writes))
                if reads:
                    stats[f'relayed: gateway hold, last read of {port} to relay written'].append(g_out[0] - reads[-1])
            # A relay sent before admission (session 49) comes in two writes: all but the body's last byte, then that
            # byte once admitted; the node can start only on the last read before its first write.
            whole = [t for t in n_in if t < n_out[0]][-1]
            stats['relayed: gateway read to its last relay write before the node wrote'].append([t for t in g_out if t < n_out[0]][-1] - g_in[0])
            stats['relayed: gateway read to the node having the whole request'].append(whole - g_in[0])
            stats['relayed: node reads before its write #1'].append(sum(t < n_out[0] for t in n_in))
            for i in range(k):
                stats[f'relayed: outside the node, client read #{i + 1}'].append((c_rd[i] - t0) - (n_out[i] - whole))
            talks(stats, 'relayed: node', ev, 'node', n_in[0], n_out[1])
            talks(stats, 'relayed: gateway', ev, 'gateway', g_in[0], g_wr[1])
            for i in range(k):
                stats[f'relayed: node read to its write #{i + 1}'].append(n_out[i] - n_in[0])
                stats[f'relayed: node write #{i + 1} to gateway read'].append(g_rd[i] - n_out[i])
                stats[f'relayed: gateway read #{i + 1} to its write'].append(g_wr[i] - g_rd[i])
                stats[f'relayed: gateway write #{i + 1} to client read'].append(c_rd[i] - g_wr[i])
                stats[f'relayed: client write to client read #{i + 1}'].append(c_rd[i] - t0)
        else:
            n_in, n_out, c_rd = bursts(ev, 'node', 'Nd', 'r'), bursts(ev, 'node', 'Nd', 'w'), bursts(ev, 'client', 'D', 'r')
            if not (n_in and min(len(n_out), len(c_rd)) >= k):
                continue
            stats['direct: client write to node read'].append(n_in[0] - t0)
            for i in range(k):
                stats[f'direct: outside the node, client read #{i + 1}'].append((c_rd[i] - t0) - (n_out[i] - [t for t in n_in if t < n_out[0]][-1]))
            talks(stats, 'direct: node', ev, 'node', n_in[0], n_out[1])
            for i in range(k):
                stats[f'direct: node read to its write #{i + 1}'].append(n_out[i] - n_in[0])
                stats[f'direct: node write #{i + 1} to client read'].append(c_rd[i] - n_out[i])
                stats[f'direct: client write to client read #{i + 1}'].append(c_rd[i] - t0)
    print(f"requests recorded: relayed {sum(q['path'] == 'C' for q in requests)}, direct {sum(q['path'] == 'D' for q in requests)}")
    print('| step | n | p25 ms | p50 ms | p75 ms |')
    print('|---|---:|---:|---:|---:|')
    for name in stats:
        v = sorted(stats[name])
        print(f'| {name} | {len(v)} | {v[len(v) // 4]:.3f} | {statistics.median(v):.3f} | {v[3 * len(v) // 4]:.3f} |')


if __name__ == '__main__':
    if sys.argv[1] == 'map':
        map_connections(*map(int, sys.argv[2:7]))
    else:
        report(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 3)
