#!/usr/bin/env python3
"""An OpenAI-compatible engine for the soak (bench/soak/soak.py): chat completions and completions, streamed or not,
and embeddings, with exact usage. Standard library only. It answers at once unless --delay-ms (per streamed chunk).

    python3 bench/soak/mock_engine.py --port 18101
"""
import argparse, json, random, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

served = {'chat': 0, 'completions': 0, 'embeddings': 0}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    delay = 0.0
    honour = False   # --honour-max-tokens: every answer is max_tokens long (a long generation)

    def log_message(self, *args):
        pass

    def _json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header('content-type', 'application/json')
        self.send_header('content-length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.startswith('/v1/models'):
            self._json(200, {'object': 'list', 'data': [{'id': 'mock-chat', 'object': 'model'}, {'id': 'mock-embed', 'object': 'model'}]})
        elif self.path == '/stats':
            with lock:
                self._json(200, dict(served))
        else:
            self._json(200, {'status': 'ok'})

    def do_POST(self):
        length = int(self.headers.get('content-length') or 0)
        try:
            body = json.loads(self.rfile.read(length) or b'{}')
        except ValueError:
            return self._json(400, {'error': {'message': 'bad json', 'type': 'invalid_request_error'}})
        if self.path == '/v1/embeddings':
            inputs = body.get('input')
            inputs = [inputs] if isinstance(inputs, str) else inputs
            tokens = sum(len(str(i).split()) + 1 for i in inputs)
            with lock:
                served['embeddings'] += 1
            return self._json(200, {'object': 'list', 'model': body.get('model'),
                                    'data': [{'object': 'embedding', 'index': i, 'embedding': [0.1, 0.2, 0.3, 0.4]} for i in range(len(inputs))],
                                    'usage': {'prompt_tokens': tokens, 'total_tokens': tokens}})
        chat = self.path == '/v1/chat/completions'
        if not chat and self.path != '/v1/completions':
            return self._json(404, {'error': {'message': 'not found', 'type': 'invalid_request_error'}})
        with lock:
            served['chat' if chat else 'completions'] += 1
        text = json.dumps(body.get('messages') if chat else body.get('prompt'))
        prompt = max(1, len(text.split()))
        limit = body.get('max_completion_tokens') or body.get('max_tokens') or 64
        n = limit if Handler.honour else max(1, min(limit, random.randint(3, 40)))
        finish = 'length' if n == limit else 'stop'
        usage = {'prompt_tokens': prompt, 'completion_tokens': n, 'total_tokens': prompt + n}
        obj = 'chat.completion' if chat else 'text_completion'
        if not body.get('stream'):
            choice = {'index': 0, 'finish_reason': finish}
            if chat:
                choice['message'] = {'role': 'assistant', 'content': ' tok' * n}
            else:
                choice['text'] = ' tok' * n
            return self._json(200, {'id': 'mock-1', 'object': obj, 'created': int(time.time()), 'model': body.get('model'),
                                    'choices': [choice], 'usage': usage})
        self.send_response(200)
        self.send_header('content-type', 'text/event-stream')
        self.send_header('transfer-encoding', 'chunked')
        self.end_headers()

        def send(payload):
            data = f'data: {payload}\n\n'.encode()
            self.wfile.write(f'{len(data):x}\r\n'.encode() + data + b'\r\n')
            self.wfile.flush()

        try:
            sobj = obj + '.chunk' if chat else obj
            for i in range(n):
                choice = {'index': 0, 'finish_reason': finish if i == n - 1 else None}
                if chat:
                    choice['delta'] = {'content': ' tok'} if i else {'role': 'assistant', 'content': ' tok'}
                else:
                    choice['text'] = ' tok'
                send(json.dumps({'id': 'mock-1', 'object': sobj, 'created': 1, 'model': body.get('model'), 'choices': [choice]}))
                if self.delay:
                    time.sleep(self.delay)
            if (body.get('stream_options') or {}).get('include_usage'):
                send(json.dumps({'id': 'mock-1', 'object': sobj, 'created': 1, 'model': body.get('model'), 'choices': [], 'usage': usage}))
            send('[DONE]')
            self.wfile.write(b'0\r\n\r\n')
        except (BrokenPipeError, ConnectionResetError):
            pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--port', type=int, default=18101)
    parser.add_argument('--delay-ms', type=float, default=2.0)
    parser.add_argument('--honour-max-tokens', action='store_true', help='answer max_tokens tokens, not 3 to 40')
    args = parser.parse_args()
    Handler.honour = args.honour_max_tokens
    Handler.delay = args.delay_ms / 1000
    server = ThreadingHTTPServer(('127.0.0.1', args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == '__main__':
    main()
