#!/usr/bin/env python3
"""A noisy neighbour on a shared pool: a real `sovereign serve` (SQLite, embedded defaults, the built-in test model)
and the soak's mock engine (bench/soak/mock_engine.py, registered as an external engine), two tenants. The noisy one
floods; the polite one sends ordinary requests one at a time. Each scenario measures the polite tenant alone, then
beside the flood, in the same run, and reports the ratio.

    python3 bench/soak/noisy_neighbour.py --bin artifacts/bin/Sovereign.Cli/release/sovereign.dll

Scenarios (--only to pick):
  local-flood   noisy: 32 concurrent streams on the local model, max_tokens to the context's end, read at once
  relay-slow    noisy: as many streams as the engine's capacity on the external engine, long answers read slowly
                (4 KiB receive buffer, 1 KiB/s: above Kestrel's 240 B/s minimum, so nothing cuts them)
  cancel        noisy: 60 streams cut after their first content chunk; afterwards the budget's reserved is 0 and
                the settled sum equals the ledger's
  budget        a tenant with a budget of 0.01 EUR sends 40 concurrent requests: spent never exceeds it
  rate          a key limited to 10 requests a minute sends 30 at once: 10 admitted, 20 refused with OpenAI's headers
Standard-library Python only.
"""
import argparse, http.client, json, os, re, socket, statistics, subprocess, threading, time

CONTENT = re.compile(rb'"content":"[^"]')   # a chunk carrying text (the role chunk's content is empty)
LOCAL = 'sovereign-test-tiny'
EXT = 'mock-ext'


class Run:
    def __init__(self, a):
        self.a = a
        self.data = os.path.join(a.out, 'data')
        os.makedirs(a.out, exist_ok=True)
        self.results = {}
        self.lock = threading.Lock()
        self.noisy_seconds = []

    # -- processes ----------------------------------------------------------------------------------------------
    def start(self):
        here = os.path.dirname(os.path.abspath(__file__))
        mock_args = ['python3', os.path.join(here, 'mock_engine.py'), '--port', str(self.a.mock_port), '--delay-ms', str(self.a.mock_delay_ms), '--honour-max-tokens']
        self.mock = subprocess.Popen(mock_args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env = dict(os.environ, Sovereign__Jurisdiction='TH', Sovereign__DataDirectory=self.data, DOTNET_gcServer='0',
                   Sovereign__Limits__MaxOutputTokens=str(self.a.max_output_tokens))
        self.log = open(os.path.join(self.a.out, 'server.log'), 'ab')
        self.server = subprocess.Popen(['dotnet', self.a.bin, 'serve', '--urls', f'http://127.0.0.1:{self.a.port}'],
                                       env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                if self.http('GET', '/ready', None, None, timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            if self.server.poll() is not None:
                raise RuntimeError('server exited at start; see server.log')
            time.sleep(0.5)
        else:
            raise RuntimeError('server not ready in 300 s')
        self.token = open(os.path.join(self.data, 'admin-token')).read().strip()

    def stop(self):
        for p in (getattr(self, 'server', None), getattr(self, 'mock', None)):
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()

    # -- http ---------------------------------------------------------------------------------------------------
    def http(self, method, path, body, key, timeout=120):
        c = http.client.HTTPConnection('127.0.0.1', self.a.port, timeout=timeout)
        try:
            headers = {'content-type': 'application/json'}
            if key:
                headers['authorization'] = f'Bearer {key}'
            c.request(method, path, json.dumps(body).encode() if body is not None else None, headers)
            r = c.getresponse()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
        finally:
            c.close()

    def admin(self, method, path, body=None):
        s, _, p = self.http(method, '/admin/v1' + path, body, self.token)
        if s >= 300:
            raise RuntimeError(f'{method} {path}: {s} {p[:300]!r}')
        return json.loads(p) if p else None

    def setup(self):
        self.admin('PUT', '/plans/standard', {'currency': 'EUR', 'weight': 1})
        for model, i, o in ((LOCAL, 0.20, 0.60), (EXT, 1.10, 3.30)):
            self.admin('POST', '/plans/standard/prices', {'model': model, 'input_per_million': i, 'output_per_million': o})
        self.admin('POST', '/nodes', {'id': 'mock', 'jurisdiction': 'TH', 'base_url': f'http://127.0.0.1:{self.a.mock_port}',
                                      'models': [{'id': EXT, 'upstream': 'mock-chat', 'capacity': self.a.capacity}]})
        self.keys = {}
        for t in ('noisy', 'polite', 'budget', 'rate'):
            self.admin('POST', '/tenants', {'id': t, 'plan': 'standard', 'policy': {'allowed_jurisdictions': ['TH'], 'allow_external_providers': True}})
            self.keys[t] = [self.admin('POST', f'/tenants/{t}/keys', {'name': f'k{i}'})['secret'] for i in range(4)]
        self.admin('PUT', '/tenants/budget/limits', {'budgets': [{'period': 'month', 'amount': 0.01}]})
        self.admin('PUT', '/tenants/noisy/limits', {'budgets': [{'period': 'month', 'amount': 1000}]})
        self.admin('PUT', '/tenants/rate/limits', {'rate_limits': [{'requests_per_minute': 10}]})

    # -- clients ------------------------------------------------------------------------------------------------
    def stream(self, key, model, max_tokens, prompt='Once upon a time', rcvbuf=None, read_rate=None, cut_after_first=False,
               stop=None, timeout=300):
        """One streamed chat completion on a raw socket. Returns (status, ttft_s, total_s, content_chunks, headers)."""
        body = json.dumps({'model': model, 'messages': [{'role': 'user', 'content': prompt}], 'max_tokens': max_tokens,
                           'temperature': 0, 'stream': True, 'stream_options': {'include_usage': True}}).encode()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        t0 = time.time()
        try:
            s.connect(('127.0.0.1', self.a.port))
            s.sendall(b'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
                      + f'Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n'.encode() + body)
            buf, head, ttft, chunks = b'', None, None, 0
            while True:
                if stop is not None and stop.is_set():
                    break
                data = s.recv(256 if read_rate else 65536)
                if not data:
                    break
                buf += data
                if head is None and b'\r\n\r\n' in buf:
                    head, buf = buf.split(b'\r\n\r\n', 1)
                    status = int(head.split(b' ')[1])
                    if status != 200:
                        rest = buf
                        while True:
                            d = s.recv(65536)
                            if not d:
                                break
                            rest += d
                        return status, None, time.time() - t0, 0, head.decode(errors='replace'), rest
                if head is not None and ttft is None and CONTENT.search(buf):
                    ttft = time.time() - t0
                    chunks = 1
                    if cut_after_first:
                        return 200, ttft, time.time() - t0, chunks, head.decode(errors='replace'), b''
                if read_rate:
                    time.sleep(len(data) / read_rate)
            return (int(head.split(b' ')[1]) if head else -1), ttft, time.time() - t0, buf.count(b'"content":"'), (head or b'').decode(errors='replace'), buf
        finally:
            s.close()

    def polite(self, model, n, max_tokens=16):
        out = []
        for i in range(n):
            t0 = time.time()
            try:
                status, ttft, total, _, _, _ = self.stream(self.keys['polite'][0], model, max_tokens, prompt=f'Hello number {i}', timeout=self.a.polite_timeout_s)
            except OSError:
                # Nothing within the bound: starved (counted apart from refusals).
                status, ttft, total = 'starved', None, time.time() - t0
            out.append((status, ttft, total))
        return out

    @staticmethod
    def summary(samples):
        ok = [x for x in samples if x[0] == 200 and x[1] is not None]
        starved = sum(1 for x in samples if x[0] == 'starved')
        refused = len(samples) - len(ok) - starved
        ttft = sorted(x[1] for x in ok)
        total = sorted(x[2] for x in ok)
        pick = lambda v, q: v[min(len(v) - 1, int(q * len(v)))] if v else None
        return {'n': len(samples), 'refused': refused, 'starved': starved, 'ttft_p50': pick(ttft, 0.5), 'ttft_max': pick(ttft, 1.0),
                'total_p50': pick(total, 0.5), 'total_max': pick(total, 1.0)}

    def beside(self, name, model, noisy_threads, noisy_fn, polite_n):
        alone = self.summary(self.polite(model, polite_n))
        stop = threading.Event()
        noisy = []
        threads = [threading.Thread(target=lambda i=i: noisy.append(noisy_fn(i, stop)), daemon=True) for i in range(noisy_threads)]
        for t in threads:
            t.start()
        time.sleep(self.a.settle_s)   # the flood under way before the polite tenant starts
        with_noise = self.summary(self.polite(model, polite_n))
        stop.set()
        for t in threads:
            t.join(timeout=600)
        ratio = lambda k: round(with_noise[k] / alone[k], 2) if alone[k] and with_noise[k] else None
        self.results[name] = {'alone': alone, 'beside_noisy': with_noise, 'ttft_p50_ratio': ratio('ttft_p50'),
                              'total_p50_ratio': ratio('total_p50'), 'noisy_statuses': self.count_statuses(noisy),
                              'noisy_seconds_p50': statistics.median(self.noisy_seconds) if self.noisy_seconds else None}
        self.noisy_seconds.clear()
        print(name, json.dumps(self.results[name]), flush=True)

    @staticmethod
    def count_statuses(items):
        counts = {}
        for x in items:
            for st in (x if isinstance(x, list) else [x]):
                counts[str(st)] = counts.get(str(st), 0) + 1
        return counts

    # -- scenarios ----------------------------------------------------------------------------------------------
    def local_flood(self):
        def noisy(i, stop):
            statuses = []
            while not stop.is_set():
                r = self.stream(self.keys['noisy'][i % 4], LOCAL, None, prompt='Tell a long story', stop=stop)
                statuses.append(r[0])
                if r[0] == 200 and not stop.is_set():
                    with self.lock:
                        self.noisy_seconds.append(r[2])
            return statuses
        self.beside('local-flood', LOCAL, 32, noisy, self.a.polite_n)

    def relay_slow(self):
        def noisy(i, stop):
            # Long answers read at 1 KiB/s through a 4 KiB receive buffer: each holds its relay for minutes unless cut.
            return [self.stream(self.keys['noisy'][i % 4], EXT, self.a.noisy_max_tokens, rcvbuf=4096, read_rate=1024, stop=stop)[0]]
        self.beside('relay-slow', EXT, self.a.capacity, noisy, self.a.polite_n)

    def cancel(self):
        key = self.keys['noisy'][0]
        before = self.limits(key)
        threads = [threading.Thread(target=lambda: self.stream(key, LOCAL if i % 2 else EXT, 200, cut_after_first=True)) for i in range(60)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.time() + 30
        while time.time() < deadline:
            after = self.limits(key)
            if after['reserved'] == 0:
                break
            time.sleep(0.2)
        self.results['cancel'] = {'before': before, 'after': after}
        print('cancel', json.dumps(self.results['cancel']), flush=True)

    def limits(self, key):
        s, _, p = self.http('GET', '/v1/limits', None, key)
        b = [x for x in json.loads(p).get('budgets', []) if x.get('period') == 'month' and not x.get('key')]
        return {'settled': b[0].get('settled'), 'reserved': b[0].get('reserved'), 'remaining': b[0].get('remaining')} if b else json.loads(p)

    def budget(self):
        key = self.keys['budget'][0]
        res = []
        threads = [threading.Thread(target=lambda i=i: res.append(self.http('POST', '/v1/chat/completions', {
            'model': EXT, 'messages': [{'role': 'user', 'content': 'Once upon a time ' * 20}], 'max_tokens': 40}, self.keys['budget'][i % 4])[0]))
            for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.results['budget'] = {'statuses': self.count_statuses(res), 'limits': self.limits(key)}
        print('budget', json.dumps(self.results['budget']), flush=True)

    def rate(self):
        res = []

        def one(i):
            s, h, p = self.http('POST', '/v1/chat/completions', {'model': EXT, 'messages': [{'role': 'user', 'content': 'hi'}], 'max_tokens': 4},
                                self.keys['rate'][i % 4])
            res.append((s, {k: v for k, v in h.items() if k.startswith('x-ratelimit') or k == 'retry-after'}, json.loads(p).get('error') if s != 200 else None))
        threads = [threading.Thread(target=one, args=(i,)) for i in range(30)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        refused = [r for r in res if r[0] == 429]
        self.results['rate'] = {'statuses': self.count_statuses([r[0] for r in res]), 'first_refusal': refused[0] if refused else None}
        print('rate', json.dumps(self.results['rate']), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--bin', required=True, help='sovereign.dll of a Release build')
    p.add_argument('--port', type=int, default=18200)
    p.add_argument('--mock-port', type=int, default=18201)
    p.add_argument('--capacity', type=int, default=4, help="the external engine's registered capacity")
    p.add_argument('--polite-n', type=int, default=20)
    p.add_argument('--noisy-max-tokens', type=int, default=40000, help='relay-slow: tokens of each slow-read answer (about 150 bytes each)')
    p.add_argument('--mock-delay-ms', type=float, default=0.0, help="the mock engine's pause per streamed chunk")
    p.add_argument('--max-output-tokens', type=int, default=4096, help='the server\'s Sovereign:Limits:MaxOutputTokens')
    p.add_argument('--polite-timeout-s', type=float, default=120, help='a polite request with nothing by then counts as starved')
    p.add_argument('--settle-s', type=float, default=2.0)
    p.add_argument('--only', default='local-flood,relay-slow,cancel,budget,rate')
    p.add_argument('--out', default='/tmp/noisy-neighbour')
    a = p.parse_args()
    run = Run(a)
    load_start = os.getloadavg()
    try:
        run.start()
        run.setup()
        for name in a.only.split(','):
            getattr(run, name.replace('-', '_'))()
    finally:
        run.stop()
        with open(os.path.join(a.out, 'report.json'), 'w') as f:
            json.dump({'load_start': load_start, 'load_end': os.getloadavg(), 'results': run.results}, f, indent=2)


if __name__ == '__main__':
    main()
