#!/usr/bin/env python3
"""Summarizes a soak's output folder (bench/soak/soak.py --out DIR) as markdown: the growth curves in windows and the
reconciliation of clients, ledger, usage API, invoices, /metrics and audit log.

    python3 bench/soak/summarize.py /tmp/soak [--window-s 120]
"""
import argparse, csv, json, os, statistics


def pct(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument('out')
    p.add_argument('--window-s', type=float, default=120)
    a = p.parse_args()
    samples = list(csv.DictReader(open(os.path.join(a.out, 'samples.csv'))))
    records = [json.loads(l) for l in open(os.path.join(a.out, 'requests.jsonl'))]
    report = json.load(open(os.path.join(a.out, 'report.json')))
    t0 = min(r['t'] for r in records) if records else 0
    print('| window (s) | server pid | requests/s | p50 / p99 ms of 200 chats (local, unstreamed) | RSS MB | threads | open FDs | DB + WAL MB | log bytes/request | load1 |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    last = None
    for s in samples:
        t = float(s['t'])
        if last is not None and t - float(last['t']) < a.window_s and s is not samples[-1]:
            continue
        start = float(last['t']) if last else 0
        window = [r for r in records if start <= r['t'] - t0 < t]
        lat = [r['ms'] for r in window if r.get('op') == 'chat' and r.get('status') == 200 and r.get('ms') is not None]
        reqs = int(s.get('requests') or 0) - (int(last.get('requests') or 0) if last else 0)
        logb = int(s['log_bytes']) - (int(last['log_bytes']) if last and last['pid'] == s['pid'] else 0)
        rate = reqs / (t - start) if t > start else 0
        print(f"| {start:.0f}-{t:.0f} | {s['pid']} | {rate:.1f} | {pct(lat, .5) or '-'} / {pct(lat, .99) or '-'} | {float(s['rss_mb']):.0f} | {s['threads']} | {s['fds']} | "
              f"{float(s['db_mb']) + float(s['wal_mb']):.1f} | {logb / reqs if reqs > 0 else 0:.0f} | {s.get('load1', '-')} |")
        last = s
    f = report.get('final') or {}
    print()
    print('Reconciliation (micro-units of the currency):')
    ledger = {t: c for t, c, _ in f.get('usage_by_tenant', [])}
    daily = {t: c for t, c, _ in f.get('daily_by_tenant', [])}
    api = {u['tenant']: round(u['cost'] * 1e6) for u in (f.get('usage_api') or {}).get('data', [])}
    inv = {t: round(float(i.get('total', 'nan')) * 1e6) for t, i in (f.get('invoices') or {}).items() if 'total' in i}
    since = dict(map(tuple, f.get('ledger_cost_since_restart', [])))
    metric = {k.split('tenant="')[1].split('"')[0]: round(v * 1e6) for k, v in (f.get('spend_by_tenant_end') or {}).items()}
    print('| tenant | ledger rows | daily aggregates | /admin/v1/usage | invoice | ledger since restart | /metrics spend (restarted process) |')
    print('|---|---|---|---|---|---|---|')
    for t in sorted(ledger):
        print(f'| {t} | {ledger[t]} | {daily.get(t)} | {api.get(t)} | {inv.get(t)} | {since.get(t)} | {metric.get(t)} |')
    print()
    print(f"client requests {f.get('client_requests')}, usage rows {f.get('usage_rows')}, client 200s without a usage record or with other tokens: "
          f"{f.get('problem_count')}, duplicate request ids {len(f.get('duplicate_request_ids') or [])}")
    print(f"audit: {f.get('audit_actions')}")
    print(f"audit outcome tokens (prompt, completion, entries) {f.get('audit_outcome_tokens')}; ledger {f.get('ledger_tokens_of_allowed')}")
    print(f"reservations left at the end: {[(t, b.get('reserved')) for t, l in (f.get('limits') or {}).items() for b in l.get('budgets', [])]}")
    errors = [e for e in report.get('events', []) if e['kind'] == 'operator_error']
    print(f"operator errors: {len(errors)}; events: {dict((k, sum(1 for e in report['events'] if e['kind'] == k)) for k in sorted({e['kind'] for e in report['events']}))}")


if __name__ == '__main__':
    main()
