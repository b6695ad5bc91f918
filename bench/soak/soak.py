#!/usr/bin/env python3
"""The soak: a real `sovereign serve` (SQLite, embedded defaults) and an external OpenAI-compatible engine
(mock_engine.py) under steady mixed traffic from several tenants and keys, with the operator changing things
mid-run and a kill -9 and restart in the middle. Standard library only.

    python3 bench/soak/soak.py --bin /tmp/sov/sovereign.dll --minutes 20 --out /tmp/soak

Traffic (each worker loops, picking a tenant, a key and an operation at random): chat and completions on the local
GGUF model (streamed and not), chat and embeddings relayed to the mock engine, streams aborted at a random byte, bad
requests (broken JSON, unknown fields, unknown models, revoked keys), budget exhaustion (one tenant's budget is small
and topped up by the operator), rate limits (one tenant at a low requests-per-minute), model unload/load.
Operator (one thread): price changes, key revocations and new keys, budget top-ups, model unload/load, checkpoints.
Sampler (every --sample-s): RSS, threads, open FDs of the server, its GC heap (/metrics), database and WAL size,
log bytes, usage and audit rows. At the end it stops the server gracefully and reconciles what the clients saw with
the ledger (usage rows, daily aggregates), the audit log (decision and outcome entries), `sovereign usage`, the
invoices and /metrics, and writes samples.csv, requests.jsonl and report.json under --out.
"""
import argparse, csv, http.client, json, os, random, signal, sqlite3, subprocess, sys, threading, time
from collections import Counter, defaultdict

LOCAL = 'stories'
EXT = 'mock-chat'
EMB = 'mock-embed'


class Soak:
    def __init__(self, args):
        self.a = args
        self.out = args.out
        os.makedirs(self.out, exist_ok=True)
        self.data = os.path.join(self.out, 'data')
        self.port = args.port
        self.lock = threading.Lock()
        self.local = threading.local()
        self.records = []          # one per request sent
        self.keys = {}             # tenant -> list of (key_id, secret)
        self.revoked = []          # secrets revoked
        self.stop = threading.Event()
        self.paused = threading.Event()   # set while the server is down (kill -9)
        self.server = None
        self.samples = []
        self.events = []
        self.metrics_before_kill = None
        self.server_pids = []

    # -- processes --------------------------------------------------------------------------------------------
    def cli(self, *argv, check=True):
        env = dict(os.environ, SOVEREIGN_URL=f'http://127.0.0.1:{self.port}', Sovereign__DataDirectory=self.data)
        r = subprocess.run(['dotnet', self.a.bin, *argv, '--data-dir', self.data] if argv[0] in ('audit',) and argv[1] in ('verify',)
                           else ['dotnet', self.a.bin, *argv], env=env, capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError(f'sovereign {" ".join(argv)}: {r.returncode} {r.stderr.strip()}')
        return r

    def start_server(self):
        env = dict(os.environ, Sovereign__Jurisdiction='TH', Sovereign__DataDirectory=self.data,
                   DOTNET_gcServer='0')
        log = open(os.path.join(self.out, 'server.log'), 'ab')
        self.server = subprocess.Popen(['dotnet', self.a.bin, 'serve', '--urls', f'http://127.0.0.1:{self.port}',
                                        '--model', f'{self.a.model}={LOCAL}', '--threads', '1', '--parallel', '4',
                                        '--ctx-size', '256'], env=env, stdout=log, stderr=subprocess.STDOUT)
        self.server_pids.append(self.server.pid)
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                s, _, _ = self.http('GET', '/ready', None, None, timeout=5)
                if s == 200:
                    break
            except OSError:
                pass
            if self.server.poll() is not None:
                raise RuntimeError('server exited at start; see server.log')
            time.sleep(1)
        else:
            raise RuntimeError('server not ready in 300 s')
        self.token = open(os.path.join(self.data, 'admin-token')).read().strip()

    def http(self, method, path, body, key, timeout=60, raw=None):
        c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=timeout)
        try:
            headers = {'content-type': 'application/json'}
            if key:
                headers['authorization'] = f'Bearer {key}'
            data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            c.request(method, path, data, headers)
            r = c.getresponse()
            payload = r.read()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), payload
        finally:
            c.close()

    def admin(self, method, path, body=None):
        s, h, p = self.http(method, '/admin/v1' + path, body, self.token)
        if s >= 300:
            raise RuntimeError(f'{method} {path}: {s} {p[:300]!r}')
        return json.loads(p) if p else None

    # -- setup --------------------------------------------------------------------------------------------------
    def setup(self):
        self.admin('PUT', '/plans/standard', {'currency': 'EUR', 'weight': 1})
        for model, i, o in ((LOCAL, 0.20, 0.60), (EXT, 1.10, 3.30), (EMB, 0.05, 0)):
            self.admin('POST', '/plans/standard/prices', {'model': model, 'input_per_million': i, 'output_per_million': o})
        self.admin('POST', '/nodes', {'id': 'mock', 'jurisdiction': 'TH', 'base_url': f'http://127.0.0.1:{self.a.mock_port}',
                                      'models': [{'id': EXT, 'upstream': 'mock-chat', 'capacity': 8},
                                                 {'id': EMB, 'upstream': 'mock-embed', 'kind': 'embedding', 'capacity': 8}]})
        for t in self.tenants():
            self.admin('POST', '/tenants', {'id': t, 'plan': 'standard', 'policy': {'allowed_jurisdictions': ['TH'], 'allow_external_providers': True}})
            self.keys[t] = [self.new_key(t) for _ in range(2)]
        self.admin('PUT', '/tenants/soak-budget/limits', {'budgets': [{'period': 'month', 'amount': 0.0005}]})
        self.admin('PUT', '/tenants/soak-rpm/limits', {'rate_limits': [{'requests_per_minute': 30}]})

    def tenants(self):
        return ['soak-a', 'soak-b', 'soak-budget', 'soak-rpm']

    def new_key(self, tenant):
        k = self.admin('POST', f'/tenants/{tenant}/keys', {'name': 'soak'})
        return (k['key']['id'], k['secret'])

    # -- traffic ------------------------------------------------------------------------------------------------
    def record(self, **r):
        r['t'] = time.time()
        r['ms'] = round((r['t'] - self.local.started) * 1000, 1) if hasattr(self.local, 'started') else None
        with self.lock:
            self.records.append(r)

    def pick(self, rnd):
        tenant = rnd.choice(self.tenants())
        with self.lock:
            if rnd.random() < 0.02 and self.revoked:
                return tenant, rnd.choice(self.revoked), True
            return tenant, rnd.choice(self.keys[tenant])[1], False

    def worker(self, n):
        rnd = random.Random(n * 7919 + self.a.seed)
        ops = [('chat', 25), ('chat_stream', 20), ('abort', 10), ('completion', 8), ('ext_chat', 10), ('ext_stream', 8),
               ('embed', 8), ('bad', 6), ('unknown_model', 3), ('models', 2)]
        names = [o for o, w in ops for _ in range(w)]
        while not self.stop.is_set():
            if self.paused.is_set():
                time.sleep(0.2)
                continue
            op = rnd.choice(names)
            tenant, key, revoked = self.pick(rnd)
            try:
                self.local.started = time.time()
                self.one(rnd, op, tenant, key, revoked)
            except (OSError, http.client.HTTPException) as e:
                self.record(op=op, tenant=tenant, status=-1, error=type(e).__name__, down=self.paused.is_set())
            if self.a.think_ms:
                time.sleep(rnd.random() * self.a.think_ms / 1000)

    def one(self, rnd, op, tenant, key, revoked):
        max_tokens = rnd.randint(4, 24)
        msgs = [{'role': 'user', 'content': 'Once upon a time ' + ' '.join(rnd.choice(['cat', 'dog', 'sun', 'tree', 'boat']) for _ in range(rnd.randint(1, 30)))}]
        if op in ('chat', 'ext_chat'):
            body = {'model': LOCAL if op == 'chat' else EXT, 'messages': msgs, 'max_tokens': max_tokens, 'temperature': 0}
            s, h, p = self.http('POST', '/v1/chat/completions', body, key)
            usage = json.loads(p).get('usage') if s == 200 else None
            self.record(op=op, tenant=tenant, status=s, rid=h.get('x-request-id'), usage=usage, revoked=revoked, code=code_of(s, p))
        elif op == 'completion':
            body = {'model': LOCAL, 'prompt': msgs[0]['content'], 'max_tokens': max_tokens}
            s, h, p = self.http('POST', '/v1/completions', body, key)
            usage = json.loads(p).get('usage') if s == 200 else None
            self.record(op=op, tenant=tenant, status=s, rid=h.get('x-request-id'), usage=usage, revoked=revoked, code=code_of(s, p))
        elif op == 'embed':
            body = {'model': EMB, 'input': [m['content'] for m in msgs] * rnd.randint(1, 3)}
            s, h, p = self.http('POST', '/v1/embeddings', body, key)
            usage = json.loads(p).get('usage') if s == 200 else None
            self.record(op=op, tenant=tenant, status=s, rid=h.get('x-request-id'), usage=usage, revoked=revoked, code=code_of(s, p))
        elif op in ('chat_stream', 'ext_stream', 'abort'):
            model = EXT if op == 'ext_stream' or (op == 'abort' and rnd.random() < 0.4) else LOCAL
            body = {'model': model, 'messages': msgs, 'max_tokens': max_tokens, 'stream': True,
                    'stream_options': {'include_usage': True}}
            self.stream(rnd, op, tenant, key, revoked, body, abort=op == 'abort')
        elif op == 'bad':
            kind = rnd.choice(['json', 'unknown', 'type', 'empty'])
            raw = {'json': b'{"model": "stories", "messages": [', 'unknown': json.dumps({'model': LOCAL, 'messages': msgs, 'temperatur': 1}).encode(),
                   'type': json.dumps({'model': LOCAL, 'messages': 'hi'}).encode(), 'empty': b''}[kind]
            s, h, p = self.http('POST', '/v1/chat/completions', None, key, raw=raw)
            self.record(op=op, tenant=tenant, status=s, rid=h.get('x-request-id'), revoked=revoked, code=code_of(s, p), kind=kind)
        elif op == 'unknown_model':
            s, h, p = self.http('POST', '/v1/chat/completions', {'model': 'no-such-model', 'messages': msgs}, key)
            self.record(op=op, tenant=tenant, status=s, rid=h.get('x-request-id'), revoked=revoked, code=code_of(s, p))
        elif op == 'models':
            s, h, p = self.http('GET', '/v1/models', None, key)
            self.record(op=op, tenant=tenant, status=s, rid=h.get('x-request-id'), revoked=revoked, code=code_of(s, p))

    def stream(self, rnd, op, tenant, key, revoked, body, abort):
        c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=60)
        try:
            c.request('POST', '/v1/chat/completions', json.dumps(body).encode(),
                      {'content-type': 'application/json', 'authorization': f'Bearer {key}'})
            r = c.getresponse()
            h = dict((k.lower(), v) for k, v in r.getheaders())
            if r.status != 200:
                p = r.read()
                self.record(op=op, tenant=tenant, status=r.status, rid=h.get('x-request-id'), revoked=revoked, code=code_of(r.status, p), model=body['model'])
                return
            cut = rnd.randint(1, 1500) if abort else None
            got = b''
            while True:
                chunk = r.read1(64) if hasattr(r, 'read1') else r.read(64)
                if not chunk:
                    break
                got += chunk
                if cut is not None and len(got) >= cut:
                    break
            usage, done, content = None, b'data: [DONE]' in got, 0
            for line in got.split(b'\n'):
                if line.startswith(b'data: {'):
                    try:
                        ev = json.loads(line[6:])
                    except ValueError:
                        continue
                    if ev.get('usage'):
                        usage = ev['usage']
                    for ch in ev.get('choices') or []:
                        if (ch.get('delta') or {}).get('content'):
                            content += 1
            self.record(op=op, tenant=tenant, status=200, rid=h.get('x-request-id'), usage=usage, done=done,
                        aborted=cut is not None and not done, bytes=len(got), chunks=content, revoked=revoked, model=body['model'])
        finally:
            c.close()   # an abort closes the connection mid-stream

    # -- operator -----------------------------------------------------------------------------------------------
    def operator(self):
        rnd = random.Random(self.a.seed + 1)
        step = 0
        while not self.stop.wait(self.a.operator_s):
            if self.paused.is_set():
                continue
            step += 1
            try:
                action = step % 6
                if action == 0:
                    price = round(rnd.uniform(0.1, 0.9), 2)
                    self.admin('POST', '/plans/standard/prices', {'model': LOCAL, 'input_per_million': price, 'output_per_million': price * 3})
                    self.event('price', model=LOCAL, input=price)
                elif action == 1:
                    t = rnd.choice(self.tenants())
                    with self.lock:
                        kid, secret = self.keys[t].pop(0)
                    self.admin('DELETE', f'/tenants/{t}/keys/{kid}')
                    fresh = self.new_key(t)
                    with self.lock:
                        self.revoked.append(secret)
                        self.keys[t].append(fresh)
                    self.event('revoke', tenant=t, key=kid)
                elif action == 2:
                    lim = self.admin('GET', '/tenants/soak-budget/limits')
                    self.admin('PUT', '/tenants/soak-budget/limits', {'budgets': [{'period': 'month', 'amount': round(step * 0.0005, 6)}]})
                    self.event('topup', amount=step * 0.0005, before=lim.get('budgets'))
                elif action == 3:
                    self.admin('POST', f'/models/{LOCAL}/unload')
                    self.event('unload')
                    time.sleep(1)
                    self.admin('POST', f'/models/{LOCAL}/load')
                    self.event('load')
                elif action == 4:
                    self.admin('POST', '/audit/checkpoint')
                    self.event('checkpoint')
                else:
                    price = round(rnd.uniform(0.5, 2.0), 2)
                    self.admin('POST', '/plans/standard/prices', {'model': EXT, 'input_per_million': price, 'output_per_million': price * 3})
                    self.event('price', model=EXT, input=price)
            except Exception as e:  # noqa: BLE001 - recorded, the soak goes on
                self.event('operator_error', step=step, error=str(e)[:300])

    def event(self, kind, **kw):
        kw.update(kind=kind, t=time.time())
        with self.lock:
            self.events.append(kw)

    # -- sampling -----------------------------------------------------------------------------------------------
    def metrics(self):
        s, h, p = self.http('GET', '/metrics', None, self.token, timeout=20)
        values = defaultdict(float)
        for line in p.decode().splitlines():
            if line.startswith('#') or not line.strip():
                continue
            name_labels, _, value = line.rpartition(' ')
            name = name_labels.split('{')[0]
            try:
                values[name] += float(value)
                values[name_labels] = float(value)
            except ValueError:
                pass
        return values

    def sample(self, t0):
        pid = self.server.pid
        row = {'t': round(time.time() - t0, 1), 'pid': pid, 'load1': float(open('/proc/loadavg').read().split()[0])}
        try:
            status = open(f'/proc/{pid}/status').read()
            row['rss_mb'] = int([l for l in status.splitlines() if l.startswith('VmRSS')][0].split()[1]) / 1024
            row['threads'] = int([l for l in status.splitlines() if l.startswith('Threads')][0].split()[1])
            row['fds'] = len(os.listdir(f'/proc/{pid}/fd'))
        except (OSError, IndexError):
            return
        db = os.path.join(self.data, 'sovereign.db')
        for name, path in (('db_mb', db), ('wal_mb', db + '-wal')):
            row[name] = round(os.path.getsize(path) / 2**20, 2) if os.path.exists(path) else 0
        row['log_bytes'] = os.path.getsize(os.path.join(self.out, 'server.log'))
        try:
            m = self.metrics()
            for k in ('process_runtime_dotnet_gc_heap_size_bytes', 'dotnet_gc_heap_total_allocated_bytes', 'dotnet_gc_last_collection_heap_size_bytes',
                      'dotnet_thread_pool_thread_count', 'dotnet_gc_last_collection_memory_committed_size_bytes'):
                if k in m:
                    row[k] = m[k]
        except (OSError, http.client.HTTPException):
            pass
        try:
            con = sqlite3.connect(f'file:{db}?mode=ro', uri=True, timeout=5)
            row['usage_rows'] = con.execute('SELECT COUNT(*) FROM metering_usage').fetchone()[0]
            row['audit_rows'] = con.execute('SELECT COUNT(*) FROM audit_entries').fetchone()[0]
            con.close()
        except sqlite3.Error as e:
            row['sqlite_error'] = str(e)
        with self.lock:
            row['requests'] = len(self.records)
        self.samples.append(row)
        print(json.dumps(row), flush=True)

    # -- run ----------------------------------------------------------------------------------------------------
    def run(self):
        mock = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), 'mock_engine.py'), '--port', str(self.a.mock_port)])
        try:
            self.start_server()
            self.setup()
            t0 = time.time()
            threads = [threading.Thread(target=self.worker, args=(i,), daemon=True) for i in range(self.a.workers)]
            threads.append(threading.Thread(target=self.operator, daemon=True))
            for th in threads:
                th.start()
            end = t0 + self.a.minutes * 60
            killed = False
            while time.time() < end:
                self.sample(t0)
                if not killed and self.a.kill_at and time.time() - t0 > self.a.kill_at * self.a.minutes * 60:
                    killed = True
                    self.kill_and_restart(t0)
                time.sleep(self.a.sample_s)
            self.stop.set()
            for th in threads:
                th.join(timeout=120)
            self.sample(t0)
            self.final = self.reconcile_live()
            self.server.send_signal(signal.SIGTERM)
            self.server.wait(timeout=120)
            self.final.update(self.reconcile_db())
        finally:
            if self.server and self.server.poll() is None:
                self.server.kill()
            mock.kill()
        self.write()

    def kill_and_restart(self, t0):
        try:
            self.metrics_before_kill = self.metrics()
        except (OSError, http.client.HTTPException):
            pass
        self.event('kill9', pid=self.server.pid)
        os.kill(self.server.pid, signal.SIGKILL)   # in-flight requests die with it
        self.server.wait()
        self.paused.set()
        time.sleep(2)
        t = time.time()
        self.start_server()
        self.restarted_ms = int(t * 1000)
        self.event('restarted', seconds=round(time.time() - t, 1))
        self.paused.clear()

    def reconcile_live(self):
        m = self.metrics()
        self.spend_by_tenant_end = {k: v for k, v in m.items() if k.startswith('sovereign_spend_total{')}
        usage = self.admin('GET', '/usage?group_by=tenant')
        invoices = {}
        for t in self.tenants():
            s, h, p = self.http('GET', f'/admin/v1/tenants/{t}/invoice?format=json', None, self.token)
            invoices[t] = json.loads(p) if s == 200 else {'status': s}
        limits = {t: self.admin('GET', f'/tenants/{t}/limits') for t in self.tenants()}
        cli = self.cli('usage', '--group-by', 'tenant', '--json', check=False)
        return {'metrics_end': {k: v for k, v in m.items() if '{' not in k}, 'spend_by_tenant_end': self.spend_by_tenant_end, 'metrics_before_kill': {k: v for k, v in (self.metrics_before_kill or {}).items() if '{' not in k},
                'usage_api': usage, 'invoices': invoices, 'limits': limits, 'cli_usage': cli.stdout[-20000:], 'cli_rc': cli.returncode}

    def reconcile_db(self):
        con = sqlite3.connect(os.path.join(self.data, 'sovereign.db'))
        rows = {r[0]: r for r in con.execute('SELECT request_id, tenant, outcome, prompt_tokens, completion_tokens, cost_micros, refusal_code, model FROM metering_usage')}
        daily = con.execute('SELECT tenant, SUM(cost_micros), SUM(requests) FROM metering_usage_daily GROUP BY tenant').fetchall() if has_col(con, 'metering_usage_daily', 'requests') else []
        by_tenant = con.execute('SELECT tenant, SUM(cost_micros), COUNT(*) FROM metering_usage GROUP BY tenant').fetchall()
        audit_kinds = Counter(a for (a,) in con.execute('SELECT action FROM audit_entries'))
        audit_tokens = con.execute("SELECT SUM(prompt_tokens), SUM(completion_tokens), COUNT(*) FROM audit_entries WHERE action IN ('inference.completed', 'inference.interrupted')").fetchone()
        ledger_tokens = con.execute("SELECT SUM(prompt_tokens), SUM(completion_tokens), COUNT(*) FROM metering_usage WHERE refusal_code IS NULL OR refusal_code = 'interrupted'").fetchone()
        since = getattr(self, 'restarted_ms', 0)
        second_process = con.execute('SELECT tenant, SUM(cost_micros) FROM metering_usage WHERE ts >= ? GROUP BY tenant', (since,)).fetchall()
        with self.lock:
            recs = list(self.records)
        seen = Counter(r.get('rid') for r in recs if r.get('rid'))
        problems = []
        for r in recs:
            rid = r.get('rid')
            if r.get('status') == 200 and r['op'] != 'models':
                if rid not in rows:
                    problems.append({'missing_usage': rid, 'op': r['op']})
                    continue
                u = rows[rid]
                if r.get('usage') and (u[3], u[4]) != (r['usage'].get('prompt_tokens'), r['usage'].get('completion_tokens') or 0):
                    problems.append({'token_mismatch': rid, 'client': r['usage'], 'ledger': u[3:5], 'op': r['op']})
        dup = [k for k, v in seen.items() if v > 1]
        return {'audit_outcome_tokens': audit_tokens, 'ledger_tokens_of_allowed': ledger_tokens, 'ledger_cost_since_restart': second_process,
                'usage_rows': len(rows), 'usage_by_tenant': by_tenant, 'daily_by_tenant': daily, 'audit_actions': dict(audit_kinds),
                'client_requests': len(recs), 'client_status': dict(Counter(f"{r['op']}:{r.get('status')}:{r.get('code') or ''}" for r in recs)),
                'problems': problems[:200], 'problem_count': len(problems), 'duplicate_request_ids': dup[:20]}

    def write(self):
        with open(os.path.join(self.out, 'samples.csv'), 'w', newline='') as f:
            keys = sorted({k for s in self.samples for k in s})
            w = csv.DictWriter(f, keys)
            w.writeheader()
            w.writerows(self.samples)
        with open(os.path.join(self.out, 'requests.jsonl'), 'w') as f:
            for r in self.records:
                f.write(json.dumps(r) + '\n')
        with open(os.path.join(self.out, 'report.json'), 'w') as f:
            json.dump({'args': vars(self.a), 'events': self.events, 'final': getattr(self, 'final', None)}, f, indent=1, default=str)


def code_of(status, payload):
    if status < 400:
        return None
    try:
        return json.loads(payload)['error'].get('code')
    except (ValueError, KeyError, TypeError, AttributeError):
        return 'unparsed'


def has_col(con, table, col):
    return any(r[1] == col for r in con.execute(f'PRAGMA table_info({table})'))


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--bin', required=True, help='sovereign.dll of a Release build')
    p.add_argument('--model', default=os.path.join(os.path.dirname(__file__), '../../../shared/models/stories260K.gguf'))
    p.add_argument('--minutes', type=float, default=20)
    p.add_argument('--workers', type=int, default=6)
    p.add_argument('--think-ms', type=float, default=20)
    p.add_argument('--operator-s', type=float, default=8)
    p.add_argument('--sample-s', type=float, default=15)
    p.add_argument('--kill-at', type=float, default=0.5, help='fraction of the run at which the server is killed -9 (0: never)')
    p.add_argument('--port', type=int, default=18100)
    p.add_argument('--mock-port', type=int, default=18101)
    p.add_argument('--seed', type=int, default=44)
    p.add_argument('--out', default='/tmp/soak')
    a = p.parse_args()
    a.model = os.path.abspath(a.model)
    Soak(a).run()


if __name__ == '__main__':
    main()
