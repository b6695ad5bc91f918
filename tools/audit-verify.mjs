#!/usr/bin/env node
// An auditor's verifier for a Sovereign audit export, written from src/Sovereign.Residency/Audit/FORMAT.md alone
// (no Sovereign code): Node's standard library only. Reads versions 1, 2 and 4 (one chain; 4 is a tenant's, its other tenants' runs as gap lines) and version 3 (every chain of
// a cluster's log, "Export of several chains"); for version 3 it reports each problem with its kind and chain, as
// `sovereign audit verify-export` does, and the same verdict per chain and for the file.
//
//   node tools/audit-verify.mjs EXPORT.jsonl --public-key operator.pem
//                                        (one PEM public key, or the operator's key history as `sovereign audit
//                                        public-key` prints it after a rotation: every key that signed, oldest first,
//                                        each after a `# key ID [retired T] [compromised-from T]` line; FORMAT.md,
//                                        "Operator key history")
//        [--responses responses.jsonl]   one JSON object a line per response the auditor saw:
//                                        {"status":200,"request_id":"req_..","audit_id":"req_..","jurisdiction":"TH",
//                                         "node":"gw-th-1","id":"chatcmpl-.."} (node optional: x-sovereign-node; id
//                                         optional: the body's id, which the outcome entry states as response_id; a
//                                         line with the id alone, its headers not kept, is found by it;
//                                         "audit_entry": x-sovereign-audit-entry, [CHAIN:]SEQUENCE:HASH, optional: the
//                                         export must hold that entry, with that hash, as the request's outcome or refusal;
//                                         a stream states it in its comment line `: x-sovereign-audit-entry ...` before
//                                         its last event, when asked with x-sovereign-stream-audit-entry: comment)
//        [--usage usage.json]            the tenant's GET /v1/usage?group_by=model,day answer
//        [--audit-page page.json]        a GET /v1/audit answer: each item re-hashes and is the export's line
//        [--previous EARLIER.jsonl]      the archive file before this one: this file must continue its chain, and
//                                        --usage counts its entries too (verify that file on its own as well; for a
//                                        version 3 file this tool verifies it too, and each chain must continue it)
//        [--earlier OLDER.jsonl]         an export of the same log received before (any range): wherever both files
//                                        state a hash at a sequence of a chain it must be the same, an entry it shows in
//                                        full is not hidden here, and entries it held are not gone (FORMAT.md, "Comparing
//                                        with an earlier export"); the operator holds the key, so only this shows a
//                                        history rebuilt and signed again
//        [--json]
//
// Exit 0: verified; 3: a check failed (each problem printed); 2: usage; 5 (version 3 only): intact and signed, but
// entries in it were not covered by a signed checkpoint of the log when it was exported (as verify-export).
import { createHash, createPublicKey, verify as verifySignature } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

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

// ---- version 3: one export of several chains (FORMAT.md, "Export of several chains") ---------------------------
// The same checks, problem kinds and verdicts as `sovereign audit verify-export`: every chain's section is walked as a
// version 2 file's lines are (links, hashes, times, tenant, range, entriesDigest), plus its genesis, the last hash and
// coverage the signed header states, its checkpoint lines, every listed chain's section, every announced
// (audit.chain_opened) or witnessed (audit.chains_signed) chain listed, and the witnessed heads the file holds.
const ZERO_HASH = '0'.repeat(64);
const MAX_UNCOVERED_AGE_MS = 10 * 60 * 1000; // verify-export's bound, judged at the export's createdAt
const ENTRY_PROPERTIES = ['type', 'sequence', 'timestamp', 'kind', 'tenant', 'keyId', 'actor', 'action', 'model', 'gateway', 'node',
  'jurisdiction', 'decision', 'decisionCode', 'reasons', 'promptTokens', 'completionTokens', 'details', 'previousHash', 'hash'];
const CHAIN_PROPERTIES = ['chain', 'firstSequence', 'lastSequence', 'lastHash', 'entriesDigest', 'coveredThrough', 'uncoveredSince'];
const HEADER_PROPERTIES = ['type', 'format', 'version', 'entryFormat', 'keyId', 'publicKeyPem', 'tenant', 'from', 'to', 'createdAt', 'chains', 'signature'];

class LineFormatError extends Error {}
const isObject = v => typeof v === 'object' && v !== null && !Array.isArray(v);
const onlyProperties = (o, names) => {
  if (!isObject(o)) throw new LineFormatError('not a JSON object');
  for (const k of Object.keys(o)) if (!names.includes(k)) throw new LineFormatError(`unexpected or repeated property '${k}'`);
};
const mustString = (o, n) => { if (typeof o[n] !== 'string') throw new LineFormatError(`'${n}' must be a string`); return o[n]; };
const maybeString = (o, n) => {
  if (o[n] === undefined || o[n] === null) return null;
  if (typeof o[n] !== 'string') throw new LineFormatError(`'${n}' must be a string or null`);
  return o[n];
};
const mustInteger = (o, n) => { if (!Number.isSafeInteger(o[n])) throw new LineFormatError(`'${n}' must be an integer`); return o[n]; };
const maybeInteger = (o, n) => {
  if (o[n] === undefined || o[n] === null) return null;
  if (!Number.isSafeInteger(o[n])) throw new LineFormatError(`'${n}' must be an integer or null`);
  return o[n];
};
const isHash = h => typeof h === 'string' && HEX64.test(h);
// 1-128 printable ASCII characters, no space (FORMAT.md, "Chains").
const isChainName = s => {
  if (typeof s !== 'string' || s.length < 1 || s.length > 128) return false;
  for (let i = 0; i < s.length; i++) { const c = s.charCodeAt(i); if (c <= 0x20 || c >= 0x7f) return false; }
  return true;
};
const genesisOf = chain => chain === null ? ZERO_HASH : sha256(Buffer.concat([str('sovereign-audit-chain-v1'), str(chain)])).toString('hex');
const chainLabel = chain => chain === null ? 'the shared chain' : `chain ${chain}`;
const digestOf = sequences => sha256(Buffer.concat(sequences.map(i64))).toString('hex');

// The heads an audit.chains_signed entry records: `chain:NAME` = `SEQUENCE:HASH`, and `shared` = `SEQUENCE:HASH` for the
// shared chain (chain null); anything else is not one.
function witnessedHeads(entry) {
  const heads = [];
  for (const [key, value] of Object.entries(entry.details)) {
    const shared = key === 'shared';
    if (!shared && (!key.startsWith('chain:') || !isChainName(key.slice(6)))) continue;
    const parts = value.split(':');
    if (parts.length !== 2 || !/^[0-9]+$/.test(parts[0]) || !isHash(parts[1])) continue;
    const sequence = Number(parts[0]);
    if (Number.isSafeInteger(sequence) && sequence > 0) heads.push({ chain: shared ? null : key.slice(6), sequence, hash: parts[1] });
  }
  return heads;
}

// A chain's lines in order: sequences contiguous from the first, each linking to the line before (the first to the
// link given, when one is), each entry re-hashing to its hash, and times never decreasing.
function chainWalk(report, firstSequence, firstLink, firstLinkName) {
  let expected = firstSequence, previousHash = firstLink, previousSequence = 0, previousTime = null;
  const walk = {
    count: 0, lastSequence: 0, lastHash: ZERO_HASH,
    add(sequence, linkHash, hash, recomputed, line, timestamp = null) {
      walk.count++;
      if (walk.count > 1 && sequence === previousSequence) report('DuplicateSequence', sequence, line, `Sequence ${sequence} appears more than once.`);
      else if (expected !== null && sequence > expected)
        report('SequenceGap', expected, line, sequence === expected + 1 ? `Entry ${expected} is missing.` : `Entries ${expected}..${sequence - 1} are missing.`);
      else if (expected !== null && sequence < expected) report('SequenceGap', sequence, line, `Sequence ${sequence} is out of order (expected ${expected}).`);
      if (!isHash(linkHash) || !isHash(hash)) report('Malformed', sequence, line, 'The hash or previous hash is not 64 lowercase hex digits.');
      else if (recomputed !== null && recomputed !== hash)
        report('HashMismatch', sequence, line, `The entry's fields hash to ${recomputed}, not the recorded ${hash}: it was modified (or moved here).`);
      if (previousHash !== null && linkHash !== previousHash)
        report('ChainBreak', sequence, line, `previousHash ${linkHash} is not ${walk.count > 1 ? `entry ${previousSequence}'s hash` : firstLinkName} ${previousHash}: the chain is broken here.`);
      if (timestamp !== null) {
        if (previousTime && timestamp < previousTime.timestamp)
          report('TimeReversed', sequence, line, `Entry ${sequence}'s time ${timestamp} is before entry ${previousTime.sequence}'s ${previousTime.timestamp}: times never decrease along the chain.`);
        previousTime = { sequence, timestamp };
      }
      previousSequence = sequence;
      previousHash = hash;
      if (expected === null || sequence >= expected) expected = sequence + 1;
      walk.lastSequence = Math.max(walk.lastSequence, sequence);
      walk.lastHash = hash;
    },
  };
  return walk;
}

// Reads an entry line as FORMAT.md defines it; null (and a Malformed problem) when it cannot be.
function readEntryLine(row, report, line) {
  const sequence = mustInteger(row, 'sequence'), previousHash = mustString(row, 'previousHash'), hash = mustString(row, 'hash');
  try {
    onlyProperties(row, ENTRY_PROPERTIES);
    if (row.kind !== 'admin' && row.kind !== 'inference') throw new LineFormatError('unknown kind');
    const decision = maybeString(row, 'decision');
    if (decision !== null && decision !== 'allowed' && decision !== 'refused') throw new LineFormatError('unknown decision');
    if (row.reasons !== undefined && !(Array.isArray(row.reasons) && row.reasons.every(r => typeof r === 'string')))
      throw new LineFormatError('reasons must be a JSON array of strings');
    if (row.details !== undefined && !(isObject(row.details) && Object.values(row.details).every(v => typeof v === 'string')))
      throw new LineFormatError('details must be a JSON object of strings');
    const entry = {
      sequence, previousHash, hash, timestamp: mustInteger(row, 'timestamp'), kind: row.kind, tenant: maybeString(row, 'tenant'),
      keyId: maybeString(row, 'keyId'), actor: mustString(row, 'actor'), action: mustString(row, 'action'), model: maybeString(row, 'model'),
      gateway: maybeString(row, 'gateway'), node: maybeString(row, 'node'), jurisdiction: maybeString(row, 'jurisdiction'), decision,
      decisionCode: maybeString(row, 'decisionCode'), reasons: row.reasons ?? [], promptTokens: maybeInteger(row, 'promptTokens'),
      completionTokens: maybeInteger(row, 'completionTokens'), details: row.details ?? {},
    };
    return { sequence, previousHash, hash, entry };
  } catch (err) {
    if (!(err instanceof LineFormatError)) throw err;
    report('Malformed', sequence, line, `The entry cannot be read: ${err.message}.`);
    return { sequence, previousHash, hash, entry: null };
  }
}

// The signed header: its form, the order of its chains, the key and the signature.
function readClusterHeader(text, report) {
  let root;
  try {
    root = JSON.parse(text);
    onlyProperties(root, HEADER_PROPERTIES);
    if (mustInteger(root, 'entryFormat') !== 1) throw new LineFormatError(`unknown entry format ${root.entryFormat}`);
    const keyId = mustString(root, 'keyId');
    mustString(root, 'publicKeyPem'); // not trusted: the auditor's key is
    if (!Array.isArray(root.chains)) throw new LineFormatError("'chains' must be an array");
    const chains = root.chains.map(item => {
      if (!isObject(item)) throw new LineFormatError("each of 'chains' must be an object");
      onlyProperties(item, CHAIN_PROPERTIES);
      const c = {
        chain: maybeString(item, 'chain'), firstSequence: maybeInteger(item, 'firstSequence'), lastSequence: maybeInteger(item, 'lastSequence'),
        lastHash: maybeString(item, 'lastHash'), entriesDigest: mustString(item, 'entriesDigest'), coveredThrough: mustInteger(item, 'coveredThrough'),
        uncoveredSince: maybeInteger(item, 'uncoveredSince'),
      };
      if ((c.firstSequence === null) !== (c.lastSequence === null) || (c.lastSequence === null) !== (c.lastHash === null)
        || (c.firstSequence !== null && (c.firstSequence > c.lastSequence || c.firstSequence < 1)) || c.coveredThrough < 0
        || (c.lastHash !== null && !isHash(c.lastHash)) || !isHash(c.entriesDigest) || (c.chain !== null && !isChainName(c.chain)))
        throw new LineFormatError(`the entry of ${chainLabel(isChainName(c.chain) ? c.chain : null)} in 'chains' is inconsistent`);
      return c;
    });
    // The shared chain first, then every member chain once, in order of name (UTF-16 code units, as JavaScript sorts).
    const names = chains.slice(1).map(c => c.chain);
    const ordered = [...new Set(names)].sort();
    if (chains.length === 0 || chains[0].chain !== null || names.some(n => n === null) || names.length !== ordered.length || names.some((n, i) => n !== ordered[i]))
      throw new LineFormatError("'chains' must list the shared chain first, then each member chain once, in order of name");
    const header = { keyId, tenant: maybeString(root, 'tenant'), from: mustInteger(root, 'from'), to: mustInteger(root, 'to'), createdAt: mustInteger(root, 'createdAt'), chains };
    const signer = exportSigner(keyId, header.createdAt);
    if (signer.refused) report(signer.refused.kind, null, 1, null, signer.refused.message);
    const signature = mustString(root, 'signature');
    const signed = Buffer.concat([
      str('sovereign-audit-export-v3'), str(keyId), opt(header.tenant, str), i64(header.from), i64(header.to), i64(header.createdAt), u32(chains.length),
      ...chains.flatMap(c => [opt(c.chain, str), opt(c.firstSequence, i64), opt(c.lastSequence, i64), opt(c.lastHash, h32), h32(c.entriesDigest),
        i64(c.coveredThrough), opt(c.uncoveredSince, i64)])]);
    if (!signer.key || !sigOk(signer.key, signed, signature))
      report('InvalidSignature', null, 1, null, "The header's signature does not verify: its scope (tenant, range, the list of chains, their ranges and coverage) was altered or forged.");
    return header;
  } catch (err) {
    if (!(err instanceof LineFormatError) && !(err instanceof SyntaxError) && !(err instanceof Error && /hex hash/.test(err.message))) throw err;
    report('Malformed', null, 1, null, `The header cannot be read: ${err.message}`);
    return null;
  }
}

// One chain's section of the file.
function chainSection(item, header, previousEnds) {
  const problems = [];
  const report = (kind, sequence, line, what) => problems.push({ kind, chain: item.chain, sequence, line, what });
  const section = { item, problems, report, shown: [], hashes: new Map(), times: new Map(), checkpoints: [], overlap: null, firstHash: null };
  // Entry 1 links to the chain's genesis, which binds it to its name; after an earlier archive file, the first entry
  // links to that file's last of the same chain, or is that entry itself (a chain's newest entry stays in the log).
  let link = item.firstSequence === 1 ? genesisOf(item.chain) : null;
  let linkName = `${chainLabel(item.chain)}'s genesis hash`;
  const before = previousEnds?.find(p => p.chain === item.chain);
  if (item.firstSequence !== null && before && before.lastSequence !== null && before.lastHash !== null) {
    if (item.firstSequence === before.lastSequence + 1) [link, linkName] = [before.lastHash, `the previous file's last hash of ${chainLabel(item.chain)}`];
    else if (item.firstSequence === before.lastSequence) section.overlap = { sequence: before.lastSequence, hash: before.lastHash };
    else report('SequenceGap', Math.min(item.firstSequence, before.lastSequence + 1), 1,
      `The previous file ends ${chainLabel(item.chain)} at ${before.lastSequence}; this one starts it at ${item.firstSequence}: the files do not continue each other.`);
  }
  section.walk = chainWalk(report, item.firstSequence, link, linkName);
  section.record = sequence => {
    if (section.overlap && section.overlap.sequence === sequence && section.overlap.hash !== section.walk.lastHash)
      report('ChainBreak', sequence, null, `Entry ${sequence} has hash ${section.walk.lastHash}, but the previous file ends ${chainLabel(item.chain)} with it as ${section.overlap.hash}.`);
    section.hashes.set(sequence, section.walk.lastHash);
    if (sequence === 1) section.firstHash = section.walk.lastHash;
  };
  return section;
}

function addSectionLine(section, header, row, line, found) {
  const { report, walk } = section;
  const type = isObject(row) && typeof row.type === 'string' ? row.type : null;
  if (type === 'entry') {
    const sequence = mustInteger(row, 'sequence');
    section.shown.push(sequence);
    const read = readEntryLine(row, report, line);
    if (read.entry === null) walk.add(read.sequence, read.previousHash, read.hash, null, line);
    else {
      const e = read.entry;
      let recomputed = null;
      if (isHash(e.previousHash)) recomputed = sha256(entryBytes(e)).toString('hex');
      walk.add(e.sequence, e.previousHash, e.hash, recomputed, line, e.timestamp);
      if (header.tenant !== null && e.tenant !== header.tenant) report('OutOfScope', e.sequence, line, `A full entry of tenant '${e.tenant}' in an export for '${header.tenant}'.`);
      if (e.timestamp < header.from || e.timestamp >= header.to) report('OutOfScope', e.sequence, line, `Entry time ${e.timestamp} is outside the exported range [${header.from}, ${header.to}).`);
      section.times.set(e.sequence, e.timestamp);
      found.entries.push({ ...row, chain: section.item.chain });
      if (e.action === 'audit.chain_opened') found.announced.push({ entry: e, by: section.item.chain });
      if (e.action === 'audit.chains_signed') found.witnessed.set(section.item.chain ?? '', { entry: e, by: section.item.chain });
    }
    section.record(sequence);
  } else if (type === 'redacted') {
    const sequence = mustInteger(row, 'sequence');
    onlyProperties(row, ['type', 'sequence', 'previousHash', 'hash']);
    if (header.tenant === null) report('OutOfScope', sequence, line, 'A redacted line in an export without a tenant filter hides an entry.');
    walk.add(sequence, mustString(row, 'previousHash'), mustString(row, 'hash'), null, line);
    section.record(sequence);
  } else if (type === 'checkpoint') {
    onlyProperties(row, ['type', 'sequence', 'hash', 'timestamp', 'keyId', 'signature']);
    section.checkpoints.push({ sequence: mustInteger(row, 'sequence'), hash: mustString(row, 'hash'), timestamp: mustInteger(row, 'timestamp'),
      keyId: mustString(row, 'keyId'), signature: mustString(row, 'signature'), line });
  } else report('Malformed', null, line, `Unknown line type '${type}'.`);
}

// What the section shows once read: its checkpoint lines, its end against the header, coverage and its verdict.
function finishSection(section, header, lastLine) {
  const { item, report, walk } = section;
  let verified = 0, covered = 0;
  for (const c of section.checkpoints) {
    if (!isHash(c.hash) || c.sequence < 1) { report('Malformed', c.sequence, c.line, 'Checkpoint has an invalid sequence or hash.'); continue; }
    const known = trustedKeys.get(c.keyId);
    if (!known) { report('KeyMismatch', c.sequence, c.line, `Checkpoint is signed by key ${c.keyId}, not a trusted key (${[...trustedKeys.keys()].join(', ')}).`); continue; }
    const signed = Buffer.concat([str('sovereign-audit-checkpoint-v1'), i64(c.sequence), h32(c.hash), i64(c.timestamp), str(c.keyId)]);
    if (!sigOk(known.key, signed, c.signature)) { report('InvalidSignature', c.sequence, c.line, `Checkpoint signature by ${c.keyId} does not verify: forged or altered.`); continue; }
    const refusal = compromisedAt(known, c.timestamp);
    if (refusal) { report('CompromisedKey', c.sequence, c.line, `Checkpoint ${refusal}: refused.`); continue; }
    countSigned(c.keyId, c.sequence, c.signature);
    verified++;
    const hash = section.hashes.get(c.sequence);
    if (hash !== c.hash)
      report('CheckpointMismatch', c.sequence, c.line, `The checkpoint signed by ${c.keyId} records hash ${c.hash} for entry ${c.sequence}, the export has ${hash ?? 'no such entry'}.`);
    else covered = Math.max(covered, c.sequence);
  }
  const last = item.lastSequence;
  if (last !== null) {
    if (walk.lastSequence < last) report('Truncated', walk.lastSequence + 1, lastLine, `The header covers sequences ${item.firstSequence}..${last} but the lines end at ${walk.lastSequence}.`);
    else if (walk.lastSequence > last) report('OutOfScope', last + 1, lastLine, `Lines continue past the header's last sequence ${last}.`);
    else if (walk.lastHash !== item.lastHash) report('CheckpointMismatch', last, lastLine, `The header signs hash ${item.lastHash} for entry ${last}, the last line has ${walk.lastHash}.`);
    // Coverage inside the range is shown by the checkpoint lines; one after the range is the signer's word in the header.
    if (item.coveredThrough >= item.firstSequence && item.coveredThrough < last && covered < item.coveredThrough)
      report('MissingCheckpoint', item.coveredThrough, lastLine, `The header says a signed checkpoint covers entry ${item.coveredThrough}, but no checkpoint line there verifies.`);
    const oldest = section.times.get(Math.max(item.coveredThrough, item.firstSequence - 1) + 1);
    const headerUncovered = last - Math.max(item.coveredThrough, item.firstSequence - 1);
    if (item.uncoveredSince !== null && headerUncovered > 0 && oldest !== undefined && oldest !== item.uncoveredSince)
      report('OutOfScope', null, 1, `The header's uncoveredSince ${item.uncoveredSince} is not the time of the oldest uncovered entry (${oldest}).`);
  }
  if (digestOf(section.shown) !== item.entriesDigest)
    report('OutOfScope', null, 1, 'The lines shown in full are not the ones the header signs (entriesDigest): an entry was redacted, or a line removed or added, after the export was made.');
  const coveredThrough = last !== null ? Math.max(covered, Math.min(item.coveredThrough, last)) : 0;
  const uncovered = last !== null ? Math.max(0, last - Math.max(coveredThrough, item.firstSequence - 1)) : 0;
  const uncoveredSince = uncovered === 0 ? null
    : coveredThrough > item.coveredThrough && section.times.has(coveredThrough + 1) ? section.times.get(coveredThrough + 1) : item.uncoveredSince;
  const lastSequence = last === null ? 0 : walk.lastSequence;
  // Its own verdict, as `audit verify` judges a chain: uncovered entries by their age when the export was made.
  let verdict;
  if (section.problems.length > 0) verdict = 'tampered';
  else if (lastSequence === 0) verdict = 'trusted';
  // No checkpoint at all: uncovered on the shared chain; a member chain's entries before its first signature (by other
  // processes, on their timer) are a tail like any other, judged by their age.
  else if (coveredThrough === 0 && item.chain === null) verdict = 'uncovered';
  else if (uncovered === 0) verdict = 'trusted';
  else verdict = (uncoveredSince === null ? Infinity : header.createdAt - uncoveredSince) > MAX_UNCOVERED_AGE_MS ? 'uncovered' : 'trusted';
  return { chain: item.chain, entriesChecked: walk.count, lastSequence, coveredThrough, uncovered, uncoveredSince, checkpointsVerified: verified, verdict };
}

// Where each chain of an earlier file ends: a version 3 header's list, or a version 2 file's last sequence and the hash
// of its last line (its closing checkpoint's), standing for the shared chain.
function endsOf(previousLines) {
  const first = JSON.parse(previousLines[0]);
  if (first.version === 3)
    return first.chains.map(c => ({ chain: c.chain ?? null, lastSequence: c.lastSequence ?? null, lastHash: c.lastHash ?? null }));
  const lastLine = previousLines.length > 1 ? JSON.parse(previousLines.at(-1)) : null;
  const lastSequence = first.lastSequence ?? null;
  return [{ chain: null, lastSequence, lastHash: lastSequence === null ? null : (lastLine?.hash ?? null) }];
}

const splitLines = text => { const l = text.split(/\r\n|\r|\n/); if (l.at(-1) === '') l.pop(); return l; };

function verifyClusterExport(bytes, previousPath) {
  const problems = [];
  const extra = (kind, sequence, line, chain, what) => problems.push({ kind, chain, sequence, line, what });
  let text;
  try { text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); } catch {
    extra('Malformed', null, 1, null, 'The file is not valid UTF-8.');
    return { problems: problems.map(withWhere), entries: [], earlierEntries: [], chains: [], verdict: 'tampered', header: null };
  }
  const fileLines = splitLines(text);
  const header = readClusterHeader(fileLines[0] ?? '', extra);
  if (!header) return { problems: problems.map(withWhere), entries: [], earlierEntries: [], chains: [], verdict: 'tampered', header: null };

  // The earlier archive file: verified on its own (by this tool, as verify-export does), then each chain continues it.
  let previousEnds = null;
  const earlierEntries = [];
  if (previousPath) {
    const earlier = spawnSync(process.execPath, [fileURLToPath(import.meta.url), previousPath, '--public-key', publicKeyFile, '--json'], { encoding: 'utf8' });
    if (earlier.status !== 0 && earlier.status !== 5) {
      const first = (() => { try { return JSON.parse(earlier.stdout).problems[0]; } catch { return null; } })();
      extra('Malformed', null, 1, null, `The previous file does not verify (first problem: ${first ? `${first.where}: ${first.what}` : earlier.stderr.trim()}).`);
    }
    const previousLines = splitLines(readFileSync(previousPath, 'utf8'));
    previousEnds = endsOf(previousLines);
    for (const l of previousLines.slice(1)) {
      try {
        const row = JSON.parse(l);
        if (row.type === 'entry' && (header.tenant === null || row.tenant === header.tenant)) earlierEntries.push(row);
      } catch { /* reported by its own verification */ }
    }
  }

  const found = { entries: [], announced: [], witnessed: new Map() };
  const sections = new Map();
  let current = null, nextIndex = 0, line = 1;
  for (const lineText of fileLines.slice(1)) {
    line++;
    try {
      const row = JSON.parse(lineText);
      if (isObject(row) && row.type === 'chain') {
        onlyProperties(row, ['type', 'chain']);
        const name = maybeString(row, 'chain');
        const index = header.chains.findIndex(c => c.chain === name);
        if (index < 0 || header.chains[index].firstSequence === null) {
          extra('OutOfScope', null, line, name, `A section of ${chainLabel(name)}, which the signed header ${index < 0 ? 'does not list' : 'lists with no entries in the range'}.`);
          current = null; continue;
        }
        if (sections.has(index) || index < nextIndex) {
          extra('OutOfScope', null, line, name, `A second section of ${chainLabel(name)}, or one out of the header's order.`);
          current = null; continue;
        }
        nextIndex = index + 1;
        current = chainSection(header.chains[index], header, previousEnds);
        sections.set(index, current);
        continue;
      }
      if (!current) { extra('Malformed', null, line, null, `A '${isObject(row) && typeof row.type === 'string' ? row.type : null}' line outside any chain's section.`); continue; }
      addSectionLine(current, header, row, line, found);
    } catch (err) {
      if (!(err instanceof LineFormatError) && !(err instanceof SyntaxError)) throw err;
      if (current) current.report('Malformed', null, line, `The line cannot be read: ${err.message}`);
      else extra('Malformed', null, line, null, `The line cannot be read: ${err.message}`);
    }
  }

  // Every chain the header lists with entries has its section.
  const chains = header.chains.map((item, i) => {
    let section = sections.get(i);
    if (!section) {
      section = chainSection(item, header, previousEnds);
      if (item.firstSequence !== null)
        section.report('Truncated', item.firstSequence, 1,
          `The header lists ${chainLabel(item.chain)} with entries ${item.firstSequence}..${item.lastSequence}, but the file has no section for it: the chain was removed from the export.`);
    }
    const result = finishSection(section, header, line);
    problems.push(...section.problems);
    return result;
  });

  // Every announced chain is listed, and one whose section starts at 1 starts as announced.
  for (const { entry, by } of found.announced) {
    const where = `${chainLabel(by)} entry ${entry.sequence}`;
    const name = entry.details.chain, firstHash = entry.details.first_hash;
    if (name === undefined || firstHash === undefined) { extra('Malformed', entry.sequence, null, by, `${where} announces a chain without a chain name and first hash.`); continue; }
    const index = header.chains.findIndex(c => c.chain === name);
    if (index < 0) extra('ChainMissing', entry.sequence, null, by, `Chain ${name}, announced in ${where}, is not in the export's list of chains: it was missing from the log when the export was made.`);
    else if (sections.get(index)?.firstHash && header.chains[index].firstSequence === 1 && sections.get(index).firstHash !== firstHash)
      extra('ChainMissing', entry.sequence, null, by, `Chain ${name}, announced in ${where} with first entry ${firstHash}, starts with ${sections.get(index).firstHash}: it was replaced.`);
  }

  // Each signer chain's newest audit.chains_signed entry: every head it names (the shared chain's too) is listed, and
  // where the file holds that entry of the named chain, it has that hash (a tail rewritten after it would not). A head
  // past the chain's last entry in the file is not judged: the file holds a time range (the writer refuses a cut log).
  for (const { entry, by } of found.witnessed.values()) {
    for (const head of witnessedHeads(entry)) {
      const index = header.chains.findIndex(c => c.chain === head.chain);
      const shown = index < 0 ? undefined : sections.get(index)?.hashes.get(head.sequence);
      if (index < 0)
        extra('ChainMissing', entry.sequence, null, by, `Chain ${head.chain}, whose entry ${head.sequence} ${chainLabel(by)} entry ${entry.sequence} records as signed, is not in the export's list of chains.`);
      else if (shown !== undefined && shown !== head.hash)
        extra('WitnessMismatch', head.sequence, null, head.chain,
          `${chainLabel(by)} entry ${entry.sequence} records entry ${head.sequence} of ${chainLabel(head.chain)} as signed with hash ${head.hash}; the export has ${shown}: the chain was rewritten from there.`);
    }
  }

  // A chain the previous file held is listed again: chains are never removed, only archived.
  for (const gone of previousEnds ?? []) {
    if (gone.chain !== null && header.chains.every(c => c.chain !== gone.chain))
      extra('ChainMissing', null, 1, gone.chain, `Chain ${gone.chain}, in the previous file, is not in this one's list of chains.`);
  }

  const verdict = problems.length > 0 ? 'tampered' : chains.some(c => c.verdict === 'uncovered') ? 'uncovered' : 'trusted';
  return { problems: problems.map(withWhere), entries: found.entries, earlierEntries, chains, verdict, header };
}

// What the report quotes from the file (a line's type, a tenant, a key id, a chain's name) was written by whoever
// altered it. Printed raw, ESC[8m hid every line after it on the auditor's terminal (the verdict included) and a line
// break forged a line of the report: a character that acts on a terminal instead of showing (C0 and C1 controls, DEL,
// bidirectional overrides and isolates, line and paragraph separators, half a surrogate pair) is shown as its \uXXXX
// escape, and a line is cut at 2,000 characters, as verify-export shows it (DisplayText). --json is left to JSON's
// own escaping.
const ACTS = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\u2028\u2029]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
function shown(text, max = 2000) {
  let s = String(text);
  if (s.length > max) s = s.slice(0, /[\ud800-\udbff]/.test(s[max - 1]) ? max - 1 : max) + '\u2026';
  return s.replace(ACTS, c => '\\u' + c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0'));
}
const say = line => console.log(shown(line, 8000));

// verify-export's way of naming where a problem is: `chain NAME, line L, seq S`.
function withWhere(p) {
  const at = p.sequence !== null && p.line !== null ? `line ${p.line}, seq ${p.sequence}` : p.sequence !== null ? `seq ${p.sequence}` : p.line !== null ? `line ${p.line}` : 'log';
  return { ...p, where: p.chain !== null && p.chain !== undefined ? `chain ${p.chain}, ${at}` : at };
}

// ---- arguments ------------------------------------------------------------------------------------------------
const args = process.argv.slice(2);
const flag = name => { const i = args.indexOf(name); if (i < 0) return null; const v = args[i + 1]; args.splice(i, 2); return v; };
const wantJson = args.includes('--json'); if (wantJson) args.splice(args.indexOf('--json'), 1);
const publicKeyFile = flag('--public-key'), responsesFile = flag('--responses'), usageFile = flag('--usage'), pageFile = flag('--audit-page'), previousFile = flag('--previous'),
  earlierFile = flag('--earlier');
if (args.length !== 1 || !publicKeyFile) {
  console.error('usage: audit-verify.mjs EXPORT.jsonl --public-key operator.pem [--responses F] [--usage F] [--json]');
  process.exit(2);
}

// The auditor trusts the keys they were handed, not the one the export carries: one PEM, or the operator's key history
// (FORMAT.md, "Operator key history"): PEM public keys, oldest first, each after an optional comment line
// `# key ID [created T] [retired T] [compromised-from T] [current]`. The id is recomputed, never taken from the comment.
function readKeyHistory(text) {
  const keys = [];
  let comment = null, block = null;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '').trim();
    if (block !== null) {
      block.push(line);
      if (line === '-----END PUBLIC KEY-----') {
        const key = createPublicKey(block.join('\n') + '\n');
        const keyId = keyIdOf(key);
        let compromisedFrom = null, retiredAt = null, current = false;
        if (comment !== null) {
          const words = comment.slice('# key '.length).split(' ').filter(Boolean);
          if (words[0] !== keyId) throw new Error(`the comment '${comment}' names another key id than its key's (${keyId})`);
          for (let i = 1; i < words.length; i++) {
            if (words[i] === 'current') { current = true; continue; }
            if (!['created', 'retired', 'compromised-from'].includes(words[i]) || i + 1 >= words.length) throw new Error(`the comment '${comment}' holds '${words[i]}'`);
            const at = Date.parse(words[i + 1]);
            if (Number.isNaN(at)) throw new Error(`the comment '${comment}' holds '${words[i + 1]}', which is not an ISO 8601 time`);
            if (words[i] === 'compromised-from') compromisedFrom = at; else if (words[i] === 'retired') retiredAt = at;
            i++;
          }
        }
        if (keys.some(k => k.keyId === keyId)) throw new Error(`the key history lists key ${keyId} twice`);
        keys.push({ keyId, key, compromisedFrom, retiredAt, current });
        block = null; comment = null;
      }
    } else if (line === '-----BEGIN PUBLIC KEY-----') block = [line];
    else if (line.startsWith('# key ')) comment = line;
  }
  if (block !== null) throw new Error('a public key has no END line');
  if (keys.length === 0) throw new Error('no PEM public key was found');
  // The key that signs now is the one its comment calls current (while a rotation rolls out, not always the newest).
  const currentIndex = keys.some(k => k.current) ? keys.findIndex(k => k.current) : keys.length - 1;
  keys.forEach((k, i) => { k.status = k.compromisedFrom !== null ? 'compromised' : i === currentIndex ? 'current' : 'retired'; });
  return keys;
}
let keyHistory;
try { keyHistory = readKeyHistory(readFileSync(publicKeyFile, 'utf8')); } catch (err) {
  console.error(`--public-key ${publicKeyFile}: ${err.message}`);
  process.exit(2);
}
const trustedKeys = new Map(keyHistory.map(k => [k.keyId, k]));
const isoTime = ms => new Date(ms).toISOString();
// A key marked compromised vouches for nothing it signed at or after its mark (its holder could have made it).
const compromisedAt = (known, signedAt) => known.compromisedFrom !== null && signedAt >= known.compromisedFrom
  ? `signed by key ${known.keyId} at ${isoTime(signedAt)}, after it was marked compromised (from ${isoTime(known.compromisedFrom)})` : null;
// The key an export's header names, refused (with the kind and sentence verify-export gives) when unknown or compromised then.
function exportSigner(keyId, createdAt) {
  const known = trustedKeys.get(keyId);
  if (!known) {
    return { key: null, refused: { kind: 'KeyMismatch', message: keyHistory.length === 1
      ? `The export is signed by key ${keyId}, not the trusted key ${keyHistory[0].keyId}.`
      : `The export is signed by key ${keyId}, which is not in the operator key history (${keyHistory.map(k => k.keyId).join(', ')}).` } };
  }
  const refusal = compromisedAt(known, createdAt);
  return { key: known.key, refused: refusal ? { kind: 'CompromisedKey', message: `The export is ${refusal}.` } : null };
}
// Which key signed what: the auditor sees each key's share of the checkpoints.
const signedBy = new Map();
const countedSignatures = new Set();
function countSigned(keyId, sequence, signature) {
  if (countedSignatures.has(signature)) return;
  countedSignatures.add(signature);
  const known = trustedKeys.get(keyId);
  const use = signedBy.get(keyId) ?? { keyId, status: known.status, signatures: 0, firstSequence: sequence, lastSequence: sequence };
  use.signatures++;
  use.firstSequence = Math.min(use.firstSequence, sequence);
  use.lastSequence = Math.max(use.lastSequence, sequence);
  signedBy.set(keyId, use);
}
const signedByReport = () => keyHistory.filter(k => signedBy.has(k.keyId)).map(k => signedBy.get(k.keyId));
const signedByLines = () => signedByReport().map(u => `signed by key ${u.keyId} (${u.status}): ${u.signatures} checkpoint(s), sequences ${u.firstSequence}..${u.lastSequence}`);

const rawBytes = readFileSync(args[0]);
const rawText = rawBytes.toString('utf8');
const lines = rawText.split('\n').filter(l => l.length > 0).map((l, i) => {
  try { return JSON.parse(l); } catch { problem(`line ${i + 1}`, 'not JSON'); return null; }
});

const header = lines[0];
const entries = [];          // every entry shown in full (version 3: of every chain)
const earlierEntries = [];   // the previous file's entries of this export's tenant: usage covers them too
// Version 3 (several chains) is read from the raw text as verify-export reads it; versions 1 and 2 as before.
const clusterResult = header?.version === 3 ? verifyClusterExport(rawBytes, previousFile) : null;
if (clusterResult) {
  problems.length = 0; // its lines are judged by the version 3 walk (an unreadable line is a Malformed problem there)
  problems.push(...clusterResult.problems);
  entries.push(...clusterResult.entries);
  earlierEntries.push(...clusterResult.earlierEntries);
} else {
  // ---- header ---------------------------------------------------------------------------------------------------
  let checkpoint = null;
  if (!header || header.type !== 'header' || header.format !== 'sovereign-audit-export' || ![1, 2, 4].includes(header.version) || header.entryFormat !== 1
      || (header.version === 4 && header.tenant == null)) {
    problem('line 1', 'not a sovereign-audit-export v1, v2 or v4 (a tenant\'s) header');
  } else {
    const signer = exportSigner(header.keyId, header.createdAt);
    if (signer.refused) problem('header', signer.refused.message);
    if (keyIdOf(createPublicKey(header.publicKeyPem)) !== header.keyId) problem('header', 'publicKeyPem does not match keyId');
    // v2 also signs entriesDigest (which lines are shown in full); v1 redactions are signed by nothing.
    let signed = null;
    try {
      signed = Buffer.concat([
        str(`sovereign-audit-export-v${header.version}`), str(header.keyId), opt(header.tenant, str),
        i64(header.from), i64(header.to), opt(header.firstSequence, i64), opt(header.lastSequence, i64), i64(header.createdAt),
        ...(header.version >= 2 ? [h32(header.entriesDigest)] : [])]);
    } catch (err) { problem('header', err.message); }
    if (signed && (!signer.key || !sigOk(signer.key, signed, header.signature))) problem('header', 'signature does not verify with the trusted key');
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
    if (line.type === 'gap') {
      // Version 4: a run of other tenants' entries shown by its ends (FORMAT.md); nothing inside it re-hashes.
      if (checkpoint) problem(at, 'a line after the checkpoint');
      if (header?.version !== 4 || header?.tenant == null) problem(at, 'a gap line outside a tenant\'s version 4 export hides entries');
      if (!Number.isInteger(line.fromSequence) || !Number.isInteger(line.toSequence) || line.toSequence < line.fromSequence)
        problem(at, 'a gap line without a valid fromSequence..toSequence');
      if (line.fromSequence !== expected) problem(at, `sequence ${line.fromSequence}, expected ${expected}`);
      if (previous !== null && line.previousHash !== previous) problem(`sequence ${line.fromSequence}`, 'previousHash is not the previous line\'s hash');
      if (line.fromSequence === 1 && line.previousHash !== '0'.repeat(64)) problem('sequence 1', 'previousHash is not 32 zero bytes');
      if (!HEX64.test(line.hash ?? '') || !HEX64.test(line.previousHash ?? '')) problem(at, 'a gap line without its hashes');
      expected = line.toSequence + 1;
      previous = line.hash;
      continue;
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
  if (header?.version === 2 || header?.version === 4) {
    const digest = sha256(Buffer.concat(lines.filter(l => l?.type === 'entry').map(l => i64(Number.isInteger(l.sequence) ? l.sequence : -1)))).toString('hex');
    if (digest !== header.entriesDigest) problem('export', 'the lines shown in full are not the ones the header signs (entriesDigest): an entry was redacted after signing');
  }
  if (header?.tenant == null) for (const l of lines) if (l?.type === 'redacted') problem(`sequence ${l.sequence}`, 'a redacted line in an export of every tenant hides an entry');
  const lastLine = lines.length > 1 ? lines.filter(l => l && (l.type === 'entry' || l.type === 'redacted' || l.type === 'gap')).at(-1) : undefined;
  const last = lastLine?.type === 'gap' ? { sequence: lastLine.toSequence, hash: lastLine.hash } : lastLine;
  if ((last?.sequence ?? null) !== (header?.lastSequence ?? null))
    problem('export', `ends at sequence ${last?.sequence ?? 'none'}, the header says ${header?.lastSequence}`);
  if (header?.firstSequence != null && header.firstSequence > 1)
    console.error(`note: the export starts at sequence ${shown(header.firstSequence, 300)}; its first previousHash links to an earlier file or archive`);

  // ---- the previous archive file ---------------------------------------------------------------------------------
  if (previousFile) {
    const earlierLines = readFileSync(previousFile, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l));
    // A line's first and last sequence: a gap line (version 4) stands for a run of entries.
    const fromOf = l => l.type === 'gap' ? l.fromSequence : l.sequence, toOf = l => l.type === 'gap' ? l.toSequence : l.sequence;
    const isChainLine = l => l && (l.type === 'entry' || l.type === 'redacted' || l.type === 'gap');
    const earlier = earlierLines.filter(isChainLine).at(-1);
    const first = lines.find(isChainLine);
    // The newest entry stays in the log when the older ones are archived, so the next file may start with the previous
    // file's last entry again (the same hash); else it starts at the entry after it and links to its hash.
    if (!earlier || !first) problem('previous', 'one of the files has no entries');
    else if (fromOf(first) === toOf(earlier)) {
      if (toOf(first) !== fromOf(first) || first.hash !== earlier.hash)
        problem('previous', `this file starts again at ${fromOf(first)}, the previous file's last entry, but not with its hash ${earlier.hash}`);
    } else if (fromOf(first) !== toOf(earlier) + 1 || first.previousHash !== earlier.hash)
      problem('previous', `this file starts at ${fromOf(first)} after ${first.previousHash}, not after ${toOf(earlier)} (${earlier.hash})`);
    // --usage counts the earlier file's entries too, each once.
    earlierEntries.push(...earlierLines.filter(l => l.type === 'entry' && (header?.tenant == null || l.tenant === header.tenant)
      && (!first || l.sequence < fromOf(first))));
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
      const known = trustedKeys.get(checkpoint.keyId);
      if (!known) problem('checkpoint', `signed by key ${checkpoint.keyId}, not a trusted key (${[...trustedKeys.keys()].join(', ')})`);
      let signed = null;
      try {
        signed = Buffer.concat([str('sovereign-audit-checkpoint-v1'), i64(checkpoint.sequence), h32(checkpoint.hash),
          i64(checkpoint.timestamp), str(checkpoint.keyId)]);
      } catch (err) { problem('checkpoint', err.message); }
      if (signed && known && !sigOk(known.key, signed, checkpoint.signature)) problem('checkpoint', 'signature does not verify with the trusted key');
      else if (signed && known && compromisedAt(known, checkpoint.timestamp)) problem('checkpoint', `${compromisedAt(known, checkpoint.timestamp)}: refused`);
      else if (signed && known) countSigned(checkpoint.keyId, checkpoint.sequence, checkpoint.signature);
    }
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
    let id = r.audit_id;
    const bodyId = typeof r.id === 'string' ? r.id : null;
    if (!id && bodyId) {
      // Only the body kept (its headers dropped): the outcome entry that names its id is the request's (FORMAT.md,
      // "Inference entries": details.response_id).
      const named = entries.find(e => e.kind === 'inference' && e.details?.response_id === bodyId);
      responsesChecked++;
      if (!named) { problem(`response ${shown(bodyId, 200)}`, 'no outcome entry names this response id (details.response_id)'); continue; }
      id = named.details.request_id;
    } else if (!id) continue; // no audit id: the response claims no decision (a 400, 401, 404)
    else responsesChecked++;
    const at = `response ${id}`;
    if (r.request_id && r.request_id !== id) problem(at, `x-request-id ${r.request_id} differs from x-sovereign-audit-id`);
    const found = byRequest.get(id);
    if (!found) { problem(at, 'no entry has this request_id'); continue; }
    const isDecision = e => e.kind === 'inference' && (e.action === 'inference.allowed' || e.action === 'inference.refused');
    if (!found.some(isDecision)) { problem(at, 'no decision entry'); continue; }
    // A request may be decided more than once under its id: failed over to another node (a decision per node tried,
    // possibly in another allowed jurisdiction), or decided again and refused (its tenant's policy changed). The
    // response answers the decision its outcome followed (the last one before the outcome entry), or the last one when
    // there is no outcome (a refusal): earlier decisions ran nothing the client received. Entries are in file order,
    // which is sequence order within a request's chain.
    const outcomeAt = found.findIndex(e => e.kind === 'inference' && (e.action === 'inference.completed' || e.action === 'inference.interrupted'));
    const followed = (outcomeAt >= 0 ? found.slice(0, outcomeAt) : found).filter(isDecision).at(-1) ?? found.filter(isDecision).at(-1);
    // A line of the body alone has no jurisdiction header to compare; any other line must state the entry's.
    if ((r.audit_id || r.jurisdiction !== undefined) && followed.jurisdiction !== r.jurisdiction)
      problem(at, `entry ${followed.sequence} says ${followed.jurisdiction}, the response said ${r.jurisdiction}`);
    const refused = followed.decision === 'refused';
    // x-sovereign-node names where an allowed request ran (a refusal's names the gateway that refused, which its
    // decision states as gateway, not node).
    if (r.node !== undefined && r.node !== null && !refused && followed.node !== r.node)
      problem(at, `entry ${followed.sequence} says node ${followed.node}, the response said ${r.node}`);
    // A 200's headers leave before its end is known: a stream its client closed (cancelled), one cut by an error event
    // (failed), one whose process was killed mid-answer (inference.interrupted) all began as 200s. Only an allowed
    // decision with an outcome that ran (not one refused before running: rejected) can have answered 200.
    const outcome = outcomeAt >= 0 ? found[outcomeAt] : null;
    const ran = outcome !== null && (outcome.action === 'inference.interrupted' ||
      ['completed', 'cancelled', 'failed', 'interrupted'].includes(outcome.details.outcome));
    if (r.status === 200 && refused) problem(at, `a 200, but entry ${followed.sequence} refused it`);
    else if (r.status === 200 && outcome === null)
      problem(at, `a 200 without an outcome entry: the export ends before it (made while it ran?) or it was removed`);
    else if (r.status === 200 && !ran)
      problem(at, `a 200, but its outcome (entry ${outcome.sequence}) is '${outcome.details.outcome}': refused before it ran`);
    if (r.status === 403 && !refused) problem(at, 'a 403 without a refused decision');
    // x-sovereign-audit-entry ([CHAIN:]SEQUENCE:HASH): the entry the server named when it answered (the outcome; a
    // refusal's decision). Its hash binds the entry and the chain before it, so a log rewritten afterwards cannot match.
    if (typeof r.audit_entry === 'string') {
      const m = /^(?:(.+):)?(\d+):([0-9a-f]{64})$/.exec(r.audit_entry);
      const expected = refused ? followed : outcome;
      if (!m) problem(at, `audit_entry '${shown(r.audit_entry, 200)}' is not [CHAIN:]SEQUENCE:HASH`);
      else {
        const [chain, seq, hash] = [m[1] ?? null, Number(m[2]), m[3]];
        const named = entries.find(e => e.sequence === seq && (e.chain ?? null) === chain);
        const label = `entry ${seq}${chain === null ? '' : ` of chain ${shown(chain, 200)}`}`;
        if (!named) problem(at, `x-sovereign-audit-entry names ${label}, which the export does not show in full (outside its range?)`);
        else if (named.hash !== hash)
          problem(at, `WitnessMismatch: x-sovereign-audit-entry states hash ${hash} for ${label}; the export has ${named.hash}: the log was rewritten after the response`);
        else if (expected && named !== expected)
          problem(at, `x-sovereign-audit-entry names ${label}, not the ${refused ? 'refused decision' : 'outcome'} of this request (entry ${expected.sequence})`);
      }
    }
    // The body's id is the one its outcome entry states (entries written before response_id was recorded state none).
    if (bodyId && outcome && outcome.details.response_id !== undefined && outcome.details.response_id !== bodyId)
      problem(at, `its outcome (entry ${outcome.sequence}) names response ${outcome.details.response_id}, the body said ${shown(bodyId, 200)}`);
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

// ---- an earlier export of the same log (FORMAT.md, "Comparing with an earlier export") -------------------------
// Every hash a file states, by chain and sequence: an entry or redacted line's own and its previous (the sequence
// before), a gap line's ends, a checkpoint, a version 3 header's last hashes; which entries it shows in full; each
// chain's range.
function statementsOf(fileLines) {
  const hashes = new Map(), full = new Set(), first = new Map(), last = new Map();
  let chain = null;
  const state = (c, sequence, hash, onHash) => {
    if (!(sequence >= 1)) return; // entry 1's previous hash is the chain's genesis
    const key = `${c ?? ''}|${sequence}`;
    if (onHash) onHash(key, c, sequence, hash); else hashes.set(key, hash);
  };
  const range = (c, from, to) => { const k = c ?? ''; if (!first.has(k)) first.set(k, from); last.set(k, Math.max(last.get(k) ?? 0, to)); };
  return {
    hashes, full, first, last,
    read(onHash) {
      const head = fileLines[0] ?? {};
      for (const item of Array.isArray(head.chains) ? head.chains : [])
        if (item.lastSequence != null && item.lastHash != null) state(item.chain ?? null, item.lastSequence, item.lastHash, onHash);
      for (const l of fileLines.slice(1)) {
        if (!l) continue;
        if (l.type === 'chain') chain = l.chain ?? null;
        else if (l.type === 'entry' || l.type === 'redacted') {
          range(chain, l.sequence, l.sequence);
          state(chain, l.sequence - 1, l.previousHash, onHash); state(chain, l.sequence, l.hash, onHash);
          if (l.type === 'entry') full.add(`${chain ?? ''}|${l.sequence}`);
        } else if (l.type === 'gap') {
          range(chain, l.fromSequence, l.toSequence);
          state(chain, l.fromSequence - 1, l.previousHash, onHash); state(chain, l.toSequence, l.hash, onHash);
        } else if (l.type === 'checkpoint') state(chain, l.sequence, l.hash, onHash);
      }
      return this;
    },
  };
}
if (earlierFile) {
  const iso = ms => Number.isSafeInteger(ms) ? new Date(ms).toISOString() : String(ms);
  const earlierCheck = spawnSync(process.execPath, [fileURLToPath(import.meta.url), earlierFile, '--public-key', publicKeyFile, '--json'], { encoding: 'utf8' });
  if (earlierCheck.status !== 0 && earlierCheck.status !== 5) {
    let first = null; try { first = JSON.parse(earlierCheck.stdout).problems?.[0]; } catch { /* reported below */ }
    problem('earlier', `the earlier export does not verify (first problem: ${first ? `${first.where}: ${first.what}` : earlierCheck.stderr.trim()})`);
  }
  let earlierLines = null;
  try { earlierLines = readFileSync(earlierFile, 'utf8').split('\n').filter(l => l.length > 0).map(l => JSON.parse(l)); }
  catch (err) { problem('earlier', `the earlier export cannot be read: ${err.message}`); }
  if (earlierLines) {
    const before = statementsOf(earlierLines).read(null), beforeHead = earlierLines[0] ?? {}, nowHead = lines[0] ?? {};
    let compared = 0; const reported = new Set();
    const now = statementsOf(lines).read((key, c, sequence, hash) => {
      if (!before.hashes.has(key)) return;
      compared++;
      if (before.hashes.get(key) !== hash && !reported.has(key)) {
        reported.add(key);
        problem(`${c == null ? '' : `chain ${c}, `}sequence ${sequence}`, `WitnessMismatch: the earlier export (made ${iso(beforeHead.createdAt)}) states hash ${before.hashes.get(key)}, this one ${hash}: the operator signed two different histories`);
      }
    });
    if (nowHead.tenant == null || nowHead.tenant === beforeHead.tenant)
      for (const key of before.full) {
        const [c, seq] = [key.slice(0, key.lastIndexOf('|')), Number(key.slice(key.lastIndexOf('|') + 1))];
        if (!now.full.has(key) && now.first.has(c) && seq >= now.first.get(c) && seq <= now.last.get(c))
          problem(`${c === '' ? '' : `chain ${c}, `}sequence ${seq}`, `OutOfScope: shown in full in the earlier export (made ${iso(beforeHead.createdAt)}) but not in this one, whose range holds it: hidden or replaced`);
      }
    if (nowHead.from <= beforeHead.from && nowHead.to >= beforeHead.createdAt)
      for (const [c, lastSeq] of before.last) {
        const ends = now.last.get(c) ?? 0;
        if (ends < lastSeq)
          problem(`${c === '' ? '' : `chain ${c}, `}sequence ${ends + 1}`, `Truncated: the earlier export (made ${iso(beforeHead.createdAt)}) holds entries up to ${lastSeq}; this one, of entries up to ${iso(nowHead.to)}, ends at ${ends}`);
      }
    if (nowHead.createdAt < beforeHead.createdAt)
      problem('earlier', `OutOfScope: this export was made ${iso(nowHead.createdAt)}, before the earlier one (${iso(beforeHead.createdAt)}): it is older, not newer (the files given the wrong way round, or an old export handed over again)`);
    if (compared === 0)
      problem('earlier', 'OutOfScope: the two files state no hash at a common sequence, so nothing shows that they are one history: ask for an export whose range holds the earlier one\'s last entry');
  }
}

// ---- the tenant API's view against the signed export ----------------------------------------------------------
let pageChecked = 0;
if (pageFile) {
  // Keyed by chain and sequence: a version 3 file's `chain` lines start each chain's section (none in versions 1-2,
  // where every line is the shared chain's, as every item of a log without member chains is).
  const bySequence = new Map();
  let sectionChain = null;
  for (const l of lines) {
    if (l?.type === 'chain') sectionChain = l.chain ?? null;
    else if (l && (l.type === 'entry' || l.type === 'redacted')) bySequence.set(`${sectionChain}|${l.sequence}`, l);
  }
  for (const item of JSON.parse(readFileSync(pageFile, 'utf8')).data) {
    pageChecked++;
    const at = item.chain == null ? `API entry ${item.sequence}` : `API entry ${item.chain}:${item.sequence}`;
    // The API names fields in snake_case and the decision code `code` (FORMAT.md, "The tenant's API").
    const e = { sequence: item.sequence, previousHash: item.previous_hash, timestamp: item.timestamp, kind: item.kind,
      tenant: item.tenant, keyId: item.key_id, actor: item.actor, action: item.action, model: item.model, gateway: item.gateway,
      node: item.node, jurisdiction: item.jurisdiction, decision: item.decision, decisionCode: item.code, reasons: item.reasons,
      promptTokens: item.prompt_tokens, completionTokens: item.completion_tokens, details: item.details };
    try {
      const h = sha256(entryBytes(e)).toString('hex');
      if (h !== item.hash) problem(at, `re-hashes to ${h}, not ${item.hash}`);
    } catch (err) { problem(at, `cannot be hashed: ${err.message}`); }
    const line = bySequence.get(`${item.chain ?? null}|${item.sequence}`);
    if (!line) problem(at, 'not in the export\'s range');
    else if (line.hash !== item.hash) problem(at, 'its hash is not the export\'s at that sequence');
    else if (line.type !== 'entry') problem(at, 'the export shows it redacted');
  }
}

if (clusterResult) {
  // Version 3: verify-export's report, problem by problem with its kind and chain, each chain's coverage and verdict.
  const verdict = problems.length > 0 ? 'tampered' : clusterResult.verdict;
  const report = {
    verified: problems.length === 0, version: 3, verdict, tenant: clusterResult.header?.tenant ?? null, chains: clusterResult.chains,
    entries: entries.length, responsesChecked, usageRows, pageChecked, problems, signedBy: signedByReport(),
  };
  if (wantJson) console.log(JSON.stringify(report, null, 2));
  else {
    for (const p of problems) say(p.kind ? `PROBLEM ${shown(p.where, 300)}: ${p.kind}: ${shown(p.what)}` : `PROBLEM ${shown(p.where, 300)}: ${shown(p.what)}`);
    for (const line of signedByLines()) say(line);
    for (const c of clusterResult.chains)
      say(`${shown(chainLabel(c.chain), 300)}: ${c.entriesChecked} entries checked, last ${c.lastSequence}, covered through ${c.coveredThrough}, uncovered ${c.uncovered}; ${c.verdict}.`);
    say(`${entries.length} entries of ${shown(report.tenant ?? 'every tenant', 300)} in ${clusterResult.chains.length} chains; ` +
      `${responsesChecked} responses, ${usageRows} usage rows and ${pageChecked} API entries checked: ` +
      (verdict === 'tampered' ? 'NOT VERIFIED' : verdict === 'uncovered' ? 'VERIFIED, but entries were NOT covered by a signed checkpoint of the log when it was exported' : 'VERIFIED'));
  }
  process.exit(verdict === 'tampered' ? 3 : verdict === 'uncovered' ? 5 : 0);
}

const report = {
  verified: problems.length === 0, tenant: header?.tenant ?? null, firstSequence: header?.firstSequence ?? null,
  lastSequence: header?.lastSequence ?? null, entries: entries.length, responsesChecked, usageRows, pageChecked, problems,
  signedBy: signedByReport(),
};
if (wantJson) console.log(JSON.stringify(report, null, 2));
else {
  for (const p of problems) say(`PROBLEM ${shown(p.where, 300)}: ${shown(p.what)}`);
  for (const line of signedByLines()) say(line);
  say(`${entries.length} entries of ${shown(report.tenant ?? 'every tenant', 300)}, sequences ${shown(report.firstSequence, 300)}..${shown(report.lastSequence, 300)}; ` +
    `${responsesChecked} responses, ${usageRows} usage rows and ${pageChecked} API entries checked: ${report.verified ? 'VERIFIED' : 'NOT VERIFIED'}`);
}
process.exit(problems.length === 0 ? 0 : 3);
