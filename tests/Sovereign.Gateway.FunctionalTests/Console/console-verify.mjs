// Runs the console's auditor page script (src/Sovereign.Gateway/Console/Assets/audit-verify.js, what /console/verify
// serves) in Node, with a minimal stand-in for the page's document: the export file and the pasted key text go in, the
// page's verdict and problems come out, one line each. Node 20 has WebCrypto, atob, TextEncoder and Blob, as a browser.
//
//   node console-verify.mjs audit-verify.js EXPORT.jsonl KEY.pem
import { readFileSync } from 'node:fs';
import vm from 'node:vm';

const [scriptPath, exportPath, keyPath] = process.argv.slice(2);
const elements = new Map();
function element(id = null) {
  const e = {
    id, children: [], dataset: {}, textContent: '', className: '', value: '', files: [], handlers: {},
    appendChild(child) { this.children.push(child); return child; },
    addEventListener(type, handler) { this.handlers[type] = handler; },
    createTHead() { return this.appendChild(element()); },
    createTBody() { return this.appendChild(element()); },
    insertRow() { return this.appendChild(element()); },
    insertCell() { return this.appendChild(element()); },
  };
  return e;
}
const byId = id => { if (!elements.has(id)) elements.set(id, element(id)); return elements.get(id); };
const document = { getElementById: byId, createElement: () => element() };
byId('public-key').value = readFileSync(keyPath, 'utf8');
byId('export-file').files = [new Blob([readFileSync(exportPath)])];

vm.runInNewContext(readFileSync(scriptPath, 'utf8'), {
  document, window: { crypto: globalThis.crypto }, crypto: globalThis.crypto, atob, TextEncoder, TextDecoder, console,
});
await byId('verify-form').handlers.submit({ preventDefault() {} });

// The verdict paragraph (#verdict) and each problem of the list the page shows.
const walk = (e, found = []) => { found.push(e); for (const c of e.children ?? []) walk(c, found); return found; };
const all = walk(byId('verify-result'));
const verdict = all.find(e => e.id === 'verdict');
console.log(`verdict: ${verdict?.dataset.verdict ?? '-'} (${verdict?.className ?? '-'}): ${verdict?.textContent ?? byId('verify-result').textContent}`);
for (const item of all.filter(e => e.id === null && e.textContent && e !== verdict && all.some(l => l.id === 'verify-problems' && l.children.includes(e))))
  console.log(`problem: ${item.textContent}`);
