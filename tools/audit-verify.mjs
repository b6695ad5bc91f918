#!/usr/bin/env node
// An auditor's verifier for a Sovereign audit export, written from src/Sovereign.Residency/Audit/FORMAT.md alone
// (no Sovereign code): Node's standard library only.
//
//   node tools/audit-verify.mjs EXPORT.jsonl --public-key operator.pem
//        [--responses responses.jsonl]   one JSON object a line per response the auditor saw:
//                                        {"status":200,"request_id":"req_..","audit_id":"req_..","jurisdiction":"TH"}
//        [--usage usage.json]            the tenant's GET /v1/usage?group_by=model,day answer
//        [--audit-page page.json]        a GET /v1/audit answer: each item re-hashes and is the export's line
//        [--previous EARLIER.jsonl]      the archive file before this one: this file must continue its chain, and
//                                        --usage counts its entries too (verify that file on its own as well)
//        [--json]
//
// Exit 0: verified; 3: a check failed (each problem printed); 2: usage.
import { createHash, createPublicKey, verify as verifySignature } from 'node:crypto';
import { readFileSync } from 'node:fs';

const problems = [];
const problem = (where, what) => problems.push({ where, what });

// ---- the encodings FORMAT.md defines -------------------------------------------------------------------------
const u32 = n => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
const i64 = n => { const b = Buffer.alloc(8); b.writeBigInt64BE(BigInt(n)); return b; };
const str = s => { const u = Buffer.from(s, 'utf8'); return Buffer.concat([u32(u.length), u]); };
const opt = (v, enc) => (v === null || v === undefined) ? Buffer.from([0]) : Buffer.concat([Buffer.from([1]), enc(v)]);
const HEX64 = /^[0-9a-f]{64}$/;
const h32 = hex => {
  if (typeof hex !== 'string' || !HEX64.test(hex)) throw new Error(`not a 64-digit lowercase hex hash: ${hex}`);
  return Buffer.from(hex, 'hex');
};
const sha256 = b => createHash('sha256').update(b).digest();

function entryBytes(e) {
  const details = Object.entries(e.details ?? {});
  for (const [k, v] of details) if (typeof v !== 'string') throw new Error(`details.${k} is not a string`);
  details.sort(([a], [b]) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
  return Buffer.concat([
    str('sovereign-audit-entry-v1'),
    i64(e.sequence),
    h32(e.previousHash),
    i64(e.timestamp),
    str(e.kind),
    opt(e.tenant, str), opt(e.keyId, str),
    str(e.actor), str(e.action),
    opt(e.model, str), opt(e.gateway, str), opt(e.node, str), opt(e.jurisdiction, str),
    opt(e.decision, str), opt(e.decisionCode, str),
    u32(e.reasons.length), ...e.reasons.map(str),
    opt(e.promptTokens, i64), opt(e.completionTokens, i64),
    u32(details.length), ...details.flatMap(([k, v]) => [str(k), str(v)]),
  ]);
}

const keyIdOf = key => sha256(key.export({ type: 'spki', format: 'der' })).toString('hex').slice(0, 16);
const sigOk = (key, bytes, hex) =>
  typeof hex === 'string' && /^[0-9a-f]{128}$/.test(hex) &&
  verifySignature('sha256', bytes, { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(hex, 'hex'));

// ---- arguments ------------------------------------------------------------------------------------------------
const args = process.argv.slice(2);
const flag = name => { const i = args.indexOf(name); if (i < 0) return null; const v = args[i + 1]; args.splice(i, 2); return v; };
const wantJson = args.includes('--json'); if (wantJson) args.splice(args.indexOf('--json'), 1);
const publicKeyFile = flag('--public-key'), responsesFile = flag('--responses'), usageFile = flag('--usage'), pageFile = flag('--audit-page'), previousFile = flag('--previous');
if (args.length !== 1 || !publicKeyFile) {
  console.error('usage: audit-verify.mjs EXPORT.jsonl --public-key operator.pem [--responses F] [--usage F] [--json]');
  process.exit(2);
}

// The auditor trusts the key they were handed, not the one the export carries.
const trusted = createPublicKey(readFileSync(publicKeyFile, 'utf8'));
const trustedKeyId = keyIdOf(trusted);

const lines = readFileSync(args[0], 'utf8').split('\n').filter(l => l.length > 0).map((l, i) => {
  try { return JSON.parse(l); } catch { problem(`line ${i + 1}`, 'not JSON'); return null; }
});

// ---- header ---------------------------------------------------------------------------------------------------
const header = lines[0];
const entries = [];
let checkpoint = null;
if (!header || header.type !== 'header' || header.format !== 'sovereign-audit-export' || ![1, 2].includes(header.version) || header.entryFormat !== 1) {
  problem('line 1', 'not a sovereign-audit-export v1 or v2 header');
} else {
  if (header.keyId !== trustedKeyId) problem('header', `keyId ${header.keyId} is not the trusted key's ${trustedKeyId}`);
  if (keyIdOf(createPublicKey(header.publicKeyPem)) !== header.keyId) problem('header', 'publicKeyPem does not match keyId');
  // v2 also signs entriesDigest (which lines are shown in full); v1 redactions are signed by nothing.
  let signed = null;
  try {
    signed = Buffer.concat([
      str(header.version === 2 ? 'sovereign-audit-export-v2' : 'sovereign-audit-export-v1'), str(header.keyId), opt(header.tenant, str),
      i64(header.from), i64(header.to), opt(header.firstSequence, i64), opt(header.lastSequence, i64), i64(header.createdAt),
      ...(header.version === 2 ? [h32(header.entriesDigest)] : [])]);
  } catch (err) { problem('header', err.message); }
  if (signed && !sigOk(trusted, signed, header.signature)) problem('header', 'signature does not verify with the trusted key');
  if (header.version === 1 && header.tenant != null)
    console.error('note: a version 1 export does not sign which lines are redacted: one of the tenant\'s entries could be hidden');
}

// ---- the chain ------------------------------------------------------------------------------------------------
let previous = null;
let expected = header?.firstSequence ?? null;
for (let i = 1; i < lines.length; i++) {
  const line = lines[i];
  if (!line) continue;
  const at = `line ${i + 1}`;
  if (line.type === 'checkpoint') {
    if (checkpoint) problem(at, 'a second checkpoint');
    if (i !== lines.length - 1) problem(at, 'the checkpoint is not the last line');
    checkpoint = line; continue;
  }
  if (line.type !== 'entry' && line.type !== 'redacted') { problem(at, `unknown line type ${line.type}`); continue; }
  if (checkpoint) problem(at, 'a line after the checkpoint');
  if (line.sequence !== expected) problem(at, `sequence ${line.sequence}, expected ${expected}`);
  expected = line.sequence + 1;
  if (previous !== null && line.previousHash !== previous) problem(`sequence ${line.sequence}`, 'previousHash is not the previous line\'s hash');
  if (line.sequence === 1 && line.previousHash !== '0'.repeat(64)) problem('sequence 1', 'previousHash is not 32 zero bytes');
  if (line.type === 'entry') {
    try {
      const h = sha256(entryBytes(line)).toString('hex');
      if (h !== line.hash) problem(`sequence ${line.sequence}`, `re-hashes to ${h}, not ${line.hash}`);
    } catch (err) { problem(`sequence ${line.sequence}`, `cannot be hashed: ${err.message}`); }
    if (header?.tenant != null && line.tenant !== header.tenant)
      problem(`sequence ${line.sequence}`, `an entry of tenant ${line.tenant} in an export of ${header.tenant}`);
    if (line.timestamp < header?.from || line.timestamp >= header?.to)
      problem(`sequence ${line.sequence}`, 'timestamp outside the export\'s from/to');
    // Times never decrease along the chain: that is what makes from/to a sequence range.
    if (entries.length > 0 && line.timestamp < entries.at(-1).timestamp)
      problem(`sequence ${line.sequence}`, `timestamp ${line.timestamp} is before entry ${entries.at(-1).sequence}'s`);
    entries.push(line);
  } else if (!HEX64.test(line.hash ?? '')) problem(`sequence ${line.sequence}`, 'redacted line without a hash');
  previous = line.hash;
}
if (header?.version === 2) {
  const digest = sha256(Buffer.concat(lines.filter(l => l?.type === 'entry').map(l => i64(Number.isInteger(l.sequence) ? l.sequence : -1)))).toString('hex');
  if (digest !== header.entriesDigest) problem('export', 'the lines shown in full are not the ones the header signs (entriesDigest): an entry was redacted after signing');
}
if (header?.tenant == null) for (const l of lines) if (l?.type === 'redacted') problem(`sequence ${l.sequence}`, 'a redacted line in an export of every tenant hides an entry');
const last = lines.length > 1 ? lines.filter(l => l && (l.type === 'entry' || l.type === 'redacted')).at(-1) : undefined;
if ((last?.sequence ?? null) !== (header?.lastSequence ?? null))
  problem('export', `ends at sequence ${last?.sequence ?? 'none'}, the header says ${header?.lastSequence}`);
if (header?.firstSequence != null && header.firstSequence > 1)
  console.error(`note: the export starts at sequence ${header.firstSequence}; its first previousHash links to an earlier file or archive`);

// ---- the previous archive file ---------------------------------------------------------------------------------
const earlierEntries = []; // the previous file's entries of this export's tenant: usage covers them too
if (previousFile) {
  const earlierLines = readFileSync(previousFile, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l));
  earlierEntries.push(...earlierLines.filter(l => l.type === 'entry' && (header?.tenant == null || l.tenant === header.tenant)));
  const earlier = earlierLines.filter(l => l.type === 'entry' || l.type === 'redacted').at(-1);
  const first = lines.find(l => l && (l.type === 'entry' || l.type === 'redacted'));
  if (!earlier || !first) problem('previous', 'one of the files has no entries');
  else if (first.sequence !== earlier.sequence + 1 || first.previousHash !== earlier.hash)
    problem('previous', `this file starts at ${first.sequence} after ${first.previousHash}, not after ${earlier.sequence} (${earlier.hash})`);
  // Times never decrease across the files either: this file's first entry is not before the earlier file's last.
  const earlierLast = earlierLines.filter(l => l.type === 'entry').at(-1);
  if (earlierLast && entries.length > 0 && entries[0].timestamp < earlierLast.timestamp)
    problem(`sequence ${entries[0].sequence}`, `timestamp ${entries[0].timestamp} is before entry ${earlierLast.sequence}'s in the previous file`);
  // (verify the earlier file itself with this tool too)
}

// ---- closing checkpoint ---------------------------------------------------------------------------------------
if (header?.lastSequence != null) {
  if (!checkpoint) problem('export', 'no closing checkpoint');
  else {
    if (checkpoint.sequence !== header.lastSequence) problem('checkpoint', `at ${checkpoint.sequence}, not the last sequence ${header.lastSequence}`);
    if (checkpoint.hash !== last?.hash) problem('checkpoint', 'its hash is not the last line\'s');
    if (checkpoint.keyId !== trustedKeyId) problem('checkpoint', `signed by key ${checkpoint.keyId}, not the trusted ${trustedKeyId}`);
    let signed = null;
    try {
      signed = Buffer.concat([str('sovereign-audit-checkpoint-v1'), i64(checkpoint.sequence), h32(checkpoint.hash),
        i64(checkpoint.timestamp), str(checkpoint.keyId)]);
    } catch (err) { problem('checkpoint', err.message); }
    if (signed && !sigOk(trusted, signed, checkpoint.signature)) problem('checkpoint', 'signature does not verify with the trusted key');
  }
}

// ---- responses the auditor saw against the entries ------------------------------------------------------------
const byRequest = new Map();
for (const e of entries) {
  const id = e.details?.request_id; if (!id) continue;
  if (!byRequest.has(id)) byRequest.set(id, []);
  byRequest.get(id).push(e);
}
let responsesChecked = 0;
if (responsesFile) {
  for (const l of readFileSync(responsesFile, 'utf8').split('\n').filter(Boolean)) {
    const r = JSON.parse(l);
    const id = r.audit_id;
    if (!id) continue; // no audit id: the response claims no decision (a 400, 401, 404)
    responsesChecked++;
    const at = `response ${id}`;
    if (r.request_id && r.request_id !== id) problem(at, `x-request-id ${r.request_id} differs from x-sovereign-audit-id`);
    const found = byRequest.get(id);
    if (!found) { problem(at, 'no entry has this request_id'); continue; }
    const decisions = found.filter(e => e.kind === 'inference' && (e.action === 'inference.allowed' || e.action === 'inference.refused'));
    if (decisions.length === 0) { problem(at, 'no decision entry'); continue; }
    for (const d of decisions)
      if (d.jurisdiction !== r.jurisdiction) problem(at, `entry ${d.sequence} says ${d.jurisdiction}, the response said ${r.jurisdiction}`);
    const refused = decisions.some(d => d.decision === 'refused');
    if (r.status === 200 && (refused || !found.some(e => e.action === 'inference.completed' && e.details.outcome === 'completed')))
      problem(at, 'a 200 without an allowed decision and a completed outcome');
    if (r.status === 403 && !refused) problem(at, 'a 403 without a refused decision');
  }
}

// ---- usage against the outcomes -------------------------------------------------------------------------------
const micro = s => { // exact decimal with up to 6 places to integer millionths
  const m = /^(-?)(\d+)(?:\.(\d{1,6}))?$/.exec(String(s)); if (!m) throw new Error(`not an amount: ${s}`);
  const v = BigInt(m[2]) * 1000000n + BigInt((m[3] ?? '').padEnd(6, '0')); return m[1] ? -v : v;
};
let usageRows = 0;
if (usageFile) {
  const usage = JSON.parse(readFileSync(usageFile, 'utf8'));
  const sums = new Map();
  for (const e of [...earlierEntries, ...entries]) {
    if (e.kind !== 'inference' || (e.action !== 'inference.completed' && e.action !== 'inference.interrupted')) continue;
    const day = new Date(e.timestamp).toISOString().slice(0, 10);
    const key = `${day}|${e.model}`;
    const s = sums.get(key) ?? { prompt: 0n, completion: 0n, cost: 0n };
    s.prompt += BigInt(e.promptTokens ?? 0); s.completion += BigInt(e.completionTokens ?? 0);
    if (e.details.cost !== undefined) s.cost += micro(e.details.cost);
    sums.set(key, s);
  }
  for (const row of usage.data) {
    usageRows++;
    const key = `${row.day}|${row.model}`;
    const s = sums.get(key);
    if (!s) { problem(`usage ${key}`, 'no outcome entry for this day and model'); continue; }
    if (BigInt(row.prompt_tokens) !== s.prompt) problem(`usage ${key}`, `prompt_tokens ${row.prompt_tokens}, the entries say ${s.prompt}`);
    if (BigInt(row.completion_tokens) !== s.completion) problem(`usage ${key}`, `completion_tokens ${row.completion_tokens}, the entries say ${s.completion}`);
    if (micro(row.cost.toFixed(6)) !== s.cost) problem(`usage ${key}`, `cost ${row.cost}, the entries say ${s.cost} millionths`);
    sums.delete(key);
  }
  for (const key of sums.keys()) problem(`usage ${key}`, 'outcome entries with no usage row');
}

// ---- the tenant API's view against the signed export ----------------------------------------------------------
let pageChecked = 0;
if (pageFile) {
  const bySequence = new Map(lines.filter(l => l && (l.type === 'entry' || l.type === 'redacted')).map(l => [l.sequence, l]));
  for (const item of JSON.parse(readFileSync(pageFile, 'utf8')).data) {
    pageChecked++;
    const at = `API entry ${item.sequence}`;
    // The API names fields in snake_case and the decision code `code` (FORMAT.md, "The tenant's API").
    const e = { sequence: item.sequence, previousHash: item.previous_hash, timestamp: item.timestamp, kind: item.kind,
      tenant: item.tenant, keyId: item.key_id, actor: item.actor, action: item.action, model: item.model, gateway: item.gateway,
      node: item.node, jurisdiction: item.jurisdiction, decision: item.decision, decisionCode: item.code, reasons: item.reasons,
      promptTokens: item.prompt_tokens, completionTokens: item.completion_tokens, details: item.details };
    try {
      const h = sha256(entryBytes(e)).toString('hex');
      if (h !== item.hash) problem(at, `re-hashes to ${h}, not ${item.hash}`);
    } catch (err) { problem(at, `cannot be hashed: ${err.message}`); }
    const line = bySequence.get(item.sequence);
    if (!line) problem(at, 'not in the export\'s range');
    else if (line.hash !== item.hash) problem(at, 'its hash is not the export\'s at that sequence');
    else if (line.type !== 'entry') problem(at, 'the export shows it redacted');
  }
}

const report = {
  verified: problems.length === 0, tenant: header?.tenant ?? null, firstSequence: header?.firstSequence ?? null,
  lastSequence: header?.lastSequence ?? null, entries: entries.length, responsesChecked, usageRows, pageChecked, problems,
};
if (wantJson) console.log(JSON.stringify(report, null, 2));
else {
  for (const p of problems) console.log(`PROBLEM ${p.where}: ${p.what}`);
  console.log(`${entries.length} entries of ${report.tenant ?? 'every tenant'}, sequences ${report.firstSequence}..${report.lastSequence}; ` +
    `${responsesChecked} responses, ${usageRows} usage rows and ${pageChecked} API entries checked: ${report.verified ? 'VERIFIED' : 'NOT VERIFIED'}`);
}
process.exit(problems.length === 0 ? 0 : 3);
