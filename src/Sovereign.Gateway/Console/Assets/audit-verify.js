// Verifies a Sovereign audit export in the browser, with the operator's public key, following
// src/Sovereign.Residency/Audit/FORMAT.md (exports v1 and v2 of one chain, and v3 of every chain of a cluster's log, with
// the problem kinds and verdicts of `sovereign audit verify-export`). Nothing leaves the page; it needs WebCrypto (any
// https page, localhost, or the page saved to disk and opened from a file).
"use strict";
(function () {
  const utf8 = new TextEncoder();
  const ENTRY_FIELDS = ["type", "sequence", "timestamp", "kind", "tenant", "keyId", "actor", "action", "model", "gateway", "node",
    "jurisdiction", "decision", "decisionCode", "reasons", "promptTokens", "completionTokens", "details", "previousHash", "hash"];
  const GENESIS = "0".repeat(64);

  class Writer {
    constructor() { this.parts = []; this.length = 0; }
    bytes(b) { this.parts.push(b); this.length += b.length; }
    u32(n) { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n, false); this.bytes(b); }
    i64(n) { const b = new Uint8Array(8); new DataView(b.buffer).setBigInt64(0, BigInt(n), false); this.bytes(b); }
    str(s) { const b = utf8.encode(s); this.u32(b.length); this.bytes(b); }
    optStr(s) { if (s === null || s === undefined) { this.bytes(Uint8Array.of(0)); } else { this.bytes(Uint8Array.of(1)); this.str(s); } }
    optI64(n) { if (n === null || n === undefined) { this.bytes(Uint8Array.of(0)); } else { this.bytes(Uint8Array.of(1)); this.i64(n); } }
    hash(hex) { if (!/^[0-9a-f]{64}$/.test(hex)) { throw new Error("not a SHA-256 hex digest: " + hex); } this.bytes(fromHex(hex)); }
    done() { const out = new Uint8Array(this.length); let at = 0; for (const p of this.parts) { out.set(p, at); at += p.length; } return out; }
  }

  function fromHex(hex) { const b = new Uint8Array(hex.length / 2); for (let i = 0; i < b.length; i++) { b[i] = parseInt(hex.substr(i * 2, 2), 16); } return b; }
  function toHex(buffer) { return Array.from(new Uint8Array(buffer), b => b.toString(16).padStart(2, "0")).join(""); }
  async function sha256(bytes) { return toHex(await crypto.subtle.digest("SHA-256", bytes)); }
  function compareBytes(a, b) { const n = Math.min(a.length, b.length); for (let i = 0; i < n; i++) { if (a[i] !== b[i]) { return a[i] - b[i]; } } return a.length - b.length; }

  async function entryHash(e) {
    const w = new Writer();
    w.str("sovereign-audit-entry-v1"); w.i64(e.sequence); w.hash(e.previousHash); w.i64(e.timestamp); w.str(e.kind);
    w.optStr(e.tenant); w.optStr(e.keyId); w.str(e.actor); w.str(e.action);
    w.optStr(e.model); w.optStr(e.gateway); w.optStr(e.node); w.optStr(e.jurisdiction);
    w.optStr(e.decision); w.optStr(e.decisionCode);
    const reasons = e.reasons || []; w.u32(reasons.length); for (const r of reasons) { w.str(r); }
    w.optI64(e.promptTokens); w.optI64(e.completionTokens);
    const details = Object.entries(e.details || {}).map(([k, v]) => [utf8.encode(k), k, v]).sort((a, b) => compareBytes(a[0], b[0]));
    w.u32(details.length); for (const [, k, v] of details) { w.str(k); w.str(v); }
    return sha256(w.done());
  }

  async function importKey(pem) {
    const body = pem.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, "").replace(/\s+/g, "");
    const der = Uint8Array.from(atob(body), c => c.charCodeAt(0));
    const key = await crypto.subtle.importKey("spki", der, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
    const keyId = (await sha256(der)).substring(0, 16);
    return { key, keyId };
  }

  // What the auditor pasted: one PEM public key, or the operator's key history as `sovereign audit public-key` prints
  // it after a rotation (FORMAT.md, "Operator key history"): keys oldest first, each after an optional
  // `# key ID [created T] [retired T] [compromised-from T] [current]` line; the id is recomputed, never trusted.
  async function importKeys(text) {
    const keys = [];
    let comment = null, block = null;
    for (const raw of text.split(/\r\n|\r|\n/)) {
      const line = raw.trim();
      if (block !== null) {
        block.push(line);
        if (line === "-----END PUBLIC KEY-----") {
          const imported = await importKey(block.join("\n"));
          let compromisedFrom = null;
          if (comment !== null) {
            const words = comment.substring("# key ".length).split(" ").filter(Boolean);
            if (words[0] !== imported.keyId) { throw new Error(`The line '${comment}' names another key than the one after it (${imported.keyId}).`); }
            const at = words.indexOf("compromised-from");
            if (at > 0) { compromisedFrom = Date.parse(words[at + 1]); if (Number.isNaN(compromisedFrom)) { throw new Error(`The line '${comment}' holds no time after compromised-from.`); } }
          }
          keys.push({ ...imported, compromisedFrom });
          block = null; comment = null;
        }
      } else if (line === "-----BEGIN PUBLIC KEY-----") { block = [line]; }
      else if (line.startsWith("# key ")) { comment = line; }
    }
    if (keys.length === 0) { throw new Error("No PEM public key ('-----BEGIN PUBLIC KEY-----') was given."); }
    return keys;
  }

  // An export is signed by one key: the key of the history it names (the newest when none, so the mismatch names it),
  // and, when that key is marked compromised from before the export was made, the sentence verify-export gives.
  function exportKey(keys, header) {
    const named = keys.find(k => k.keyId === header?.keyId);
    const chosen = named ?? keys[keys.length - 1];
    const compromised = named && named.compromisedFrom !== null && Number.isSafeInteger(header.createdAt) && header.createdAt >= named.compromisedFrom
      ? `The export is signed by key ${named.keyId} at ${new Date(header.createdAt).toISOString()}, after it was marked compromised (from ${new Date(named.compromisedFrom).toISOString()}).`
      : null;
    return { key: chosen.key, keyId: chosen.keyId, compromised };
  }

  function verifySignature(key, signatureHex, payload) {
    if (!/^[0-9a-f]{128}$/.test(signatureHex || "")) { return Promise.resolve(false); }
    return crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, fromHex(signatureHex), payload);
  }

  // ---- version 3: one export of several chains (FORMAT.md, "Export of several chains") ----------------------------
  // The checks, problem kinds and verdicts of `sovereign audit verify-export`: each chain's section walked as a version 2
  // file's lines are, its genesis, the last hash and coverage the signed header states, its checkpoint lines, every
  // listed chain's section, every announced (audit.chain_opened) or witnessed (audit.chains_signed) chain listed, and
  // the witnessed heads the file holds.
  const MAX_UNCOVERED_AGE_MS = 10 * 60 * 1000; // verify-export's bound, judged at the export's createdAt
  const CHAIN_FIELDS = ["chain", "firstSequence", "lastSequence", "lastHash", "entriesDigest", "coveredThrough", "uncoveredSince"];
  const HEADER_FIELDS = ["type", "format", "version", "entryFormat", "keyId", "publicKeyPem", "tenant", "from", "to", "createdAt", "chains", "signature"];

  class LineFormatError extends Error {}
  const isObject = v => typeof v === "object" && v !== null && !Array.isArray(v);
  const isHash = h => typeof h === "string" && /^[0-9a-f]{64}$/.test(h);
  function onlyFields(o, names) {
    if (!isObject(o)) { throw new LineFormatError("not a JSON object"); }
    for (const k of Object.keys(o)) { if (!names.includes(k)) { throw new LineFormatError(`unexpected or repeated property '${k}'`); } }
  }
  function mustString(o, n) { if (typeof o[n] !== "string") { throw new LineFormatError(`'${n}' must be a string`); } return o[n]; }
  function maybeString(o, n) {
    if (o[n] === undefined || o[n] === null) { return null; }
    if (typeof o[n] !== "string") { throw new LineFormatError(`'${n}' must be a string or null`); }
    return o[n];
  }
  function mustInteger(o, n) { if (!Number.isSafeInteger(o[n])) { throw new LineFormatError(`'${n}' must be an integer`); } return o[n]; }
  function maybeInteger(o, n) {
    if (o[n] === undefined || o[n] === null) { return null; }
    if (!Number.isSafeInteger(o[n])) { throw new LineFormatError(`'${n}' must be an integer or null`); }
    return o[n];
  }
  // 1-128 printable ASCII characters, no space (FORMAT.md, "Chains").
  function isChainName(s) {
    if (typeof s !== "string" || s.length < 1 || s.length > 128) { return false; }
    for (let i = 0; i < s.length; i++) { const c = s.charCodeAt(i); if (c <= 0x20 || c >= 0x7f) { return false; } }
    return true;
  }
  async function genesisOf(chain) {
    if (chain === null) { return GENESIS; }
    const w = new Writer(); w.str("sovereign-audit-chain-v1"); w.str(chain);
    return sha256(w.done());
  }
  const chainLabel = chain => chain === null ? "the shared chain" : `chain ${chain}`;
  function digestOf(sequences) { const w = new Writer(); for (const s of sequences) { w.i64(s); } return sha256(w.done()); }
  function splitLines(text) { const l = text.split(/\r\n|\r|\n/); if (l.length && l[l.length - 1] === "") { l.pop(); } return l; }

  // The heads an audit.chains_signed entry records: `chain:NAME` = `SEQUENCE:HASH`, and `shared` = `SEQUENCE:HASH` for
  // the shared chain (chain null); anything else is not one.
  function witnessedHeads(details) {
    const heads = [];
    for (const [key, value] of Object.entries(details)) {
      const shared = key === "shared";
      if (!shared && (!key.startsWith("chain:") || !isChainName(key.slice(6)))) { continue; }
      const parts = value.split(":");
      if (parts.length !== 2 || !/^[0-9]+$/.test(parts[0]) || !isHash(parts[1])) { continue; }
      const sequence = Number(parts[0]);
      if (Number.isSafeInteger(sequence) && sequence > 0) { heads.push({ chain: shared ? null : key.slice(6), sequence, hash: parts[1] }); }
    }
    return heads;
  }

  // A chain's lines in order: contiguous sequences, each linking to the line before (the first to the link given, when
  // one is), each entry re-hashing to its hash, times never decreasing.
  function chainWalk(report, firstSequence, firstLink, firstLinkName) {
    let expected = firstSequence, previousHash = firstLink, previousSequence = 0, previousTime = null;
    const walk = {
      count: 0, lastSequence: 0, lastHash: GENESIS,
      add(sequence, linkHash, hash, recomputed, line, timestamp) {
        walk.count++;
        if (walk.count > 1 && sequence === previousSequence) { report("DuplicateSequence", sequence, line, `Sequence ${sequence} appears more than once.`); }
        else if (expected !== null && sequence > expected) {
          report("SequenceGap", expected, line, sequence === expected + 1 ? `Entry ${expected} is missing.` : `Entries ${expected}..${sequence - 1} are missing.`);
        } else if (expected !== null && sequence < expected) { report("SequenceGap", sequence, line, `Sequence ${sequence} is out of order (expected ${expected}).`); }
        if (!isHash(linkHash) || !isHash(hash)) { report("Malformed", sequence, line, "The hash or previous hash is not 64 lowercase hex digits."); }
        else if (recomputed !== null && recomputed !== hash) { report("HashMismatch", sequence, line, "The entry does not match its hash: it was modified (or moved here)."); }
        if (previousHash !== null && linkHash !== previousHash) {
          report("ChainBreak", sequence, line, `Its previousHash is not ${walk.count > 1 ? `entry ${previousSequence}'s hash` : firstLinkName}: the chain is broken here.`);
        }
        if (timestamp !== null && timestamp !== undefined) {
          if (previousTime && timestamp < previousTime.timestamp) {
            report("TimeReversed", sequence, line, `Its time is before entry ${previousTime.sequence}'s: times never decrease along the chain.`);
          }
          previousTime = { sequence, timestamp };
        }
        previousSequence = sequence;
        previousHash = hash;
        if (expected === null || sequence >= expected) { expected = sequence + 1; }
        walk.lastSequence = Math.max(walk.lastSequence, sequence);
        walk.lastHash = hash;
      },
    };
    return walk;
  }

  async function verifyClusterExport(bytes, key, keyId, previousEnds) {
    const problems = [];
    const extra = (kind, sequence, line, chain, what) => problems.push({ kind, chain, sequence, line, what });
    let text;
    try { text = new TextDecoder("utf-8", { fatal: true }).decode(bytes); } catch (e) {
      extra("Malformed", null, 1, null, "The file is not valid UTF-8.");
      return { version: 3, checked: 0, problems, chains: [], verdict: "tampered" };
    }
    const lines = splitLines(text);

    // The signed header: its form, the order of its chains, the key and the signature.
    let header;
    try {
      const root = JSON.parse(lines[0] || "");
      onlyFields(root, HEADER_FIELDS);
      if (mustInteger(root, "entryFormat") !== 1) { throw new LineFormatError(`unknown entry format ${root.entryFormat}`); }
      const headerKeyId = mustString(root, "keyId");
      mustString(root, "publicKeyPem"); // not trusted: the key given is
      if (!Array.isArray(root.chains)) { throw new LineFormatError("'chains' must be an array"); }
      const chains = root.chains.map(item => {
        if (!isObject(item)) { throw new LineFormatError("each of 'chains' must be an object"); }
        onlyFields(item, CHAIN_FIELDS);
        const c = {
          chain: maybeString(item, "chain"), firstSequence: maybeInteger(item, "firstSequence"), lastSequence: maybeInteger(item, "lastSequence"),
          lastHash: maybeString(item, "lastHash"), entriesDigest: mustString(item, "entriesDigest"), coveredThrough: mustInteger(item, "coveredThrough"),
          uncoveredSince: maybeInteger(item, "uncoveredSince"),
        };
        if ((c.firstSequence === null) !== (c.lastSequence === null) || (c.lastSequence === null) !== (c.lastHash === null)
          || (c.firstSequence !== null && (c.firstSequence > c.lastSequence || c.firstSequence < 1)) || c.coveredThrough < 0
          || (c.lastHash !== null && !isHash(c.lastHash)) || !isHash(c.entriesDigest) || (c.chain !== null && !isChainName(c.chain))) {
          throw new LineFormatError(`the entry of ${chainLabel(isChainName(c.chain) ? c.chain : null)} in 'chains' is inconsistent`);
        }
        return c;
      });
      // The shared chain first, then every member chain once, in order of name (UTF-16 code units, as JavaScript sorts).
      const names = chains.slice(1).map(c => c.chain);
      const ordered = [...new Set(names)].sort();
      if (chains.length === 0 || chains[0].chain !== null || names.some(n => n === null) || names.length !== ordered.length || names.some((n, i) => n !== ordered[i])) {
        throw new LineFormatError("'chains' must list the shared chain first, then each member chain once, in order of name");
      }
      if (headerKeyId !== keyId) { extra("KeyMismatch", null, 1, null, `The export was signed by key ${headerKeyId}, not by the key given (${keyId}).`); }
      header = { keyId: headerKeyId, tenant: maybeString(root, "tenant"), from: mustInteger(root, "from"), to: mustInteger(root, "to"), createdAt: mustInteger(root, "createdAt"), chains };
      const signature = mustString(root, "signature");
      const w = new Writer();
      w.str("sovereign-audit-export-v3"); w.str(headerKeyId); w.optStr(header.tenant); w.i64(header.from); w.i64(header.to); w.i64(header.createdAt); w.u32(chains.length);
      for (const c of chains) {
        w.optStr(c.chain); w.optI64(c.firstSequence); w.optI64(c.lastSequence);
        if (c.lastHash === null) { w.bytes(Uint8Array.of(0)); } else { w.bytes(Uint8Array.of(1)); w.hash(c.lastHash); }
        w.hash(c.entriesDigest); w.i64(c.coveredThrough); w.optI64(c.uncoveredSince);
      }
      if (headerKeyId !== keyId || !(await verifySignature(key, signature, w.done()))) {
        extra("InvalidSignature", null, 1, null, "The header's signature does not verify with the key given: its scope (tenant, range, the list of chains, their ranges and coverage) was altered or forged.");
      }
    } catch (e) {
      if (!(e instanceof LineFormatError) && !(e instanceof SyntaxError)) { throw e; }
      extra("Malformed", null, 1, null, "The header cannot be read: " + e.message);
      return { version: 3, checked: 0, problems, chains: [], verdict: "tampered" };
    }

    async function newSection(item) {
      const section = { item, problems: [], shown: [], hashes: new Map(), times: new Map(), checkpoints: [], firstHash: null };
      section.report = (kind, sequence, line, what) => section.problems.push({ kind, chain: item.chain, sequence, line, what });
      // Entry 1 links to the chain's genesis, which binds it to its name; after a previous archive file (verify-export
      // --previous), the first entry links to that file's last of the same chain, or is that entry itself (a chain's
      // newest entry stays in the log when the older ones are archived).
      let link = item.firstSequence === 1 ? await genesisOf(item.chain) : null;
      let linkName = `${chainLabel(item.chain)}'s genesis hash`;
      let overlap = null;
      const before = previousEnds ? previousEnds.find(p => p.chain === item.chain) : null;
      if (item.firstSequence !== null && before && before.lastSequence !== null && before.lastHash !== null) {
        if (item.firstSequence === before.lastSequence + 1) { link = before.lastHash; linkName = `the previous file's last hash of ${chainLabel(item.chain)}`; }
        else if (item.firstSequence === before.lastSequence) { overlap = { sequence: before.lastSequence, hash: before.lastHash }; }
        else {
          section.report("SequenceGap", Math.min(item.firstSequence, before.lastSequence + 1), 1,
            `The previous file ends ${chainLabel(item.chain)} at ${before.lastSequence}; this one starts it at ${item.firstSequence}: the files do not continue each other.`);
        }
      }
      section.walk = chainWalk(section.report, item.firstSequence, link, linkName);
      section.record = sequence => {
        if (overlap && overlap.sequence === sequence && overlap.hash !== section.walk.lastHash) {
          section.report("ChainBreak", sequence, null, `Entry ${sequence} has hash ${section.walk.lastHash}, but the previous file ends ${chainLabel(item.chain)} with it as ${overlap.hash}.`);
        }
        section.hashes.set(sequence, section.walk.lastHash);
        if (sequence === 1) { section.firstHash = section.walk.lastHash; }
      };
      return section;
    }

    const announced = [], witnessed = new Map(), sections = new Map();
    let current = null, nextIndex = 0, line = 1, checked = 0;
    for (const lineText of lines.slice(1)) {
      line++;
      try {
        const row = JSON.parse(lineText);
        const type = isObject(row) && typeof row.type === "string" ? row.type : null;
        if (type === "chain") {
          onlyFields(row, ["type", "chain"]);
          const name = maybeString(row, "chain");
          const index = header.chains.findIndex(c => c.chain === name);
          if (index < 0 || header.chains[index].firstSequence === null) {
            extra("OutOfScope", null, line, name, `A section of ${chainLabel(name)}, which the signed header ${index < 0 ? "does not list" : "lists with no entries in the range"}.`);
            current = null; continue;
          }
          if (sections.has(index) || index < nextIndex) {
            extra("OutOfScope", null, line, name, `A second section of ${chainLabel(name)}, or one out of the header's order.`);
            current = null; continue;
          }
          nextIndex = index + 1;
          current = await newSection(header.chains[index]);
          sections.set(index, current);
          continue;
        }
        if (!current) { extra("Malformed", null, line, null, `A '${type}' line outside any chain's section.`); continue; }
        const { report, walk } = current;
        if (type === "entry") {
          const sequence = mustInteger(row, "sequence");
          current.shown.push(sequence);
          const previousHash = mustString(row, "previousHash"), hash = mustString(row, "hash");
          let entry = null;
          try {
            onlyFields(row, ENTRY_FIELDS);
            if (row.kind !== "admin" && row.kind !== "inference") { throw new LineFormatError("unknown kind"); }
            const decision = maybeString(row, "decision");
            if (decision !== null && decision !== "allowed" && decision !== "refused") { throw new LineFormatError("unknown decision"); }
            if (row.reasons !== undefined && !(Array.isArray(row.reasons) && row.reasons.every(r => typeof r === "string"))) { throw new LineFormatError("reasons must be a JSON array of strings"); }
            if (row.details !== undefined && !(isObject(row.details) && Object.values(row.details).every(v => typeof v === "string"))) { throw new LineFormatError("details must be a JSON object of strings"); }
            for (const n of ["tenant", "keyId", "model", "gateway", "node", "jurisdiction", "decisionCode"]) { maybeString(row, n); }
            mustString(row, "actor"); mustString(row, "action"); mustInteger(row, "timestamp"); maybeInteger(row, "promptTokens"); maybeInteger(row, "completionTokens");
            entry = row;
          } catch (e) {
            if (!(e instanceof LineFormatError)) { throw e; }
            report("Malformed", sequence, line, `The entry cannot be read: ${e.message}.`);
          }
          if (entry === null) { walk.add(sequence, previousHash, hash, null, line, null); }
          else {
            checked++;
            const recomputed = isHash(previousHash) ? await entryHash(entry) : null;
            walk.add(sequence, previousHash, hash, recomputed, line, entry.timestamp);
            const entryTenant = entry.tenant ?? null;
            if (header.tenant !== null && entryTenant !== header.tenant) { report("OutOfScope", sequence, line, `A full entry of tenant '${entryTenant}' in an export for '${header.tenant}'.`); }
            if (entry.timestamp < header.from || entry.timestamp >= header.to) { report("OutOfScope", sequence, line, "The entry's time is outside the exported range."); }
            current.times.set(sequence, entry.timestamp);
            if (entry.action === "audit.chain_opened") { announced.push({ entry, by: current.item.chain }); }
            if (entry.action === "audit.chains_signed") { witnessed.set(current.item.chain ?? "", { entry, by: current.item.chain }); }
          }
          current.record(sequence);
        } else if (type === "redacted") {
          const sequence = mustInteger(row, "sequence");
          onlyFields(row, ["type", "sequence", "previousHash", "hash"]);
          if (header.tenant === null) { report("OutOfScope", sequence, line, "A redacted line in an export without a tenant filter hides an entry."); }
          walk.add(sequence, mustString(row, "previousHash"), mustString(row, "hash"), null, line, null);
          current.record(sequence);
        } else if (type === "checkpoint") {
          onlyFields(row, ["type", "sequence", "hash", "timestamp", "keyId", "signature"]);
          current.checkpoints.push({ sequence: mustInteger(row, "sequence"), hash: mustString(row, "hash"), timestamp: mustInteger(row, "timestamp"),
            keyId: mustString(row, "keyId"), signature: mustString(row, "signature"), line });
        } else {
          report("Malformed", null, line, `Unknown line type '${type}'.`);
        }
      } catch (e) {
        if (!(e instanceof LineFormatError) && !(e instanceof SyntaxError)) { throw e; }
        if (current) { current.report("Malformed", null, line, "The line cannot be read: " + e.message); }
        else { extra("Malformed", null, line, null, "The line cannot be read: " + e.message); }
      }
    }

    // Each chain the header lists: its section (one with entries must have one), its checkpoint lines, its end and
    // coverage against the header, and its own verdict, uncovered entries judged by their age at createdAt.
    const chains = [];
    for (let i = 0; i < header.chains.length; i++) {
      const item = header.chains[i];
      let section = sections.get(i);
      if (!section) {
        section = await newSection(item);
        if (item.firstSequence !== null) {
          section.report("Truncated", item.firstSequence, 1, `The header lists ${chainLabel(item.chain)} with entries ${item.firstSequence}..${item.lastSequence}, but the file has no section for it: the chain was removed from the export.`);
        }
      }
      const { report, walk } = section;
      let covered = 0;
      for (const c of section.checkpoints) {
        if (!isHash(c.hash) || c.sequence < 1) { report("Malformed", c.sequence, c.line, "Checkpoint has an invalid sequence or hash."); continue; }
        if (c.keyId !== keyId) { report("KeyMismatch", c.sequence, c.line, `The checkpoint is signed by key ${c.keyId}, not by the key given (${keyId}).`); continue; }
        const cw = new Writer();
        cw.str("sovereign-audit-checkpoint-v1"); cw.i64(c.sequence); cw.hash(c.hash); cw.i64(c.timestamp); cw.str(c.keyId);
        if (!(await verifySignature(key, c.signature, cw.done()))) { report("InvalidSignature", c.sequence, c.line, "The checkpoint's signature does not verify with the key given."); continue; }
        const hash = section.hashes.get(c.sequence);
        if (hash !== c.hash) { report("CheckpointMismatch", c.sequence, c.line, `The checkpoint records another hash for entry ${c.sequence} than the export has.`); }
        else { covered = Math.max(covered, c.sequence); }
      }
      const last = item.lastSequence;
      if (last !== null) {
        if (walk.lastSequence < last) { report("Truncated", walk.lastSequence + 1, line, `The header covers sequences ${item.firstSequence}..${last}, but the lines end at ${walk.lastSequence}: truncated.`); }
        else if (walk.lastSequence > last) { report("OutOfScope", last + 1, line, `Lines continue past the header's last sequence ${last}.`); }
        else if (walk.lastHash !== item.lastHash) { report("CheckpointMismatch", last, line, `The header signs another hash for entry ${last} than the last line has.`); }
        if (item.coveredThrough >= item.firstSequence && item.coveredThrough < last && covered < item.coveredThrough) {
          report("MissingCheckpoint", item.coveredThrough, line, `The header says a signed checkpoint covers entry ${item.coveredThrough}, but no checkpoint line there verifies.`);
        }
        const oldest = section.times.get(Math.max(item.coveredThrough, item.firstSequence - 1) + 1);
        if (item.uncoveredSince !== null && last - Math.max(item.coveredThrough, item.firstSequence - 1) > 0 && oldest !== undefined && oldest !== item.uncoveredSince) {
          report("OutOfScope", null, 1, "The header's uncoveredSince is not the time of the oldest uncovered entry.");
        }
      }
      if ((await digestOf(section.shown)) !== item.entriesDigest) {
        report("OutOfScope", null, 1, "The lines shown in full are not the ones the header signs: an entry was redacted, or a line removed or added, after the export was made.");
      }
      const coveredThrough = last !== null ? Math.max(covered, Math.min(item.coveredThrough, last)) : 0;
      const uncovered = last !== null ? Math.max(0, last - Math.max(coveredThrough, item.firstSequence - 1)) : 0;
      const uncoveredSince = uncovered === 0 ? null
        : coveredThrough > item.coveredThrough && section.times.has(coveredThrough + 1) ? section.times.get(coveredThrough + 1) : item.uncoveredSince;
      const lastSequence = last === null ? 0 : walk.lastSequence;
      let verdict;
      if (section.problems.length > 0) { verdict = "tampered"; }
      else if (lastSequence === 0) { verdict = "trusted"; }
      // No checkpoint at all: uncovered on the shared chain; a member chain's entries before its first signature (by
      // other processes, on their timer) are a tail like any other, judged by their age.
      else if (coveredThrough === 0 && item.chain === null) { verdict = "uncovered"; }
      else if (uncovered === 0) { verdict = "trusted"; }
      else { verdict = (uncoveredSince === null ? Infinity : header.createdAt - uncoveredSince) > MAX_UNCOVERED_AGE_MS ? "uncovered" : "trusted"; }
      chains.push({ chain: item.chain, entries: walk.count, lastSequence, coveredThrough, uncovered, verdict, section });
      problems.push(...section.problems);
    }

    // Every announced chain is listed, and one whose section starts at 1 starts as announced.
    for (const { entry, by } of announced) {
      const where = `${chainLabel(by)} entry ${entry.sequence}`;
      const details = entry.details || {};
      if (details.chain === undefined || details.first_hash === undefined) { extra("Malformed", entry.sequence, null, by, `${where} announces a chain without a chain name and first hash.`); continue; }
      const index = header.chains.findIndex(c => c.chain === details.chain);
      const section = sections.get(index);
      if (index < 0) { extra("ChainMissing", entry.sequence, null, by, `Chain ${details.chain}, announced in ${where}, is not in the export's list of chains: it was missing from the log when the export was made.`); }
      else if (section && section.firstHash && header.chains[index].firstSequence === 1 && section.firstHash !== details.first_hash) {
        extra("ChainMissing", entry.sequence, null, by, `Chain ${details.chain}, announced in ${where}, starts with another entry: it was replaced.`);
      }
    }

    // Each signer chain's newest audit.chains_signed entry: every head it names (the shared chain's too) is listed, and
    // where the file holds that entry of the named chain it has that hash (a tail rewritten after it would not).
    for (const { entry, by } of witnessed.values()) {
      for (const head of witnessedHeads(entry.details || {})) {
        const index = header.chains.findIndex(c => c.chain === head.chain);
        const shown = index < 0 ? undefined : sections.get(index)?.hashes.get(head.sequence);
        if (index < 0) { extra("ChainMissing", entry.sequence, null, by, `Chain ${head.chain}, whose entry ${head.sequence} ${chainLabel(by)} entry ${entry.sequence} records as signed, is not in the export's list of chains.`); }
        else if (shown !== undefined && shown !== head.hash) {
          extra("WitnessMismatch", head.sequence, null, head.chain, `${chainLabel(by)} entry ${entry.sequence} records entry ${head.sequence} of ${chainLabel(head.chain)} as signed with another hash than the export has: the chain was rewritten from there.`);
        }
      }
    }

    const verdict = problems.length > 0 ? "tampered" : chains.some(c => c.verdict === "uncovered") ? "uncovered" : "trusted";
    return { version: 3, checked, problems, verdict, chains: chains.map(({ section, ...c }) => c) };
  }

  async function verify(bytes, pem, previousEnds) {
    const problems = [];
    const problem = (line, sequence, what) => problems.push({ line, sequence, what });
    const keys = await importKeys(pem);
    const text = new TextDecoder().decode(bytes);
    const lines = text.split("\n");
    if (lines.length && lines[lines.length - 1] === "") { lines.pop(); }
    let header;
    try { header = JSON.parse(lines[0]); } catch (e) { return { checked: 0, problems: [{ line: 1, sequence: null, what: "The first line is not a JSON header." }] }; }
    const { key, keyId, compromised } = exportKey(keys, header);
    if (header && header.version === 3) {
      const result = await verifyClusterExport(bytes, key, keyId, previousEnds);
      if (compromised) { result.problems.unshift({ kind: "CompromisedKey", chain: null, sequence: null, line: 1, what: compromised }); result.verdict = "tampered"; }
      return result;
    }
    if (compromised) { problem(1, null, compromised); }
    if (header.type !== "header" || header.format !== "sovereign-audit-export" || ![1, 2, 4].includes(header.version) || (header.version === 4 && header.tenant === null)) {
      return { checked: 0, problems: [{ line: 1, sequence: null, what: "Not a Sovereign audit export (v1, v2, or a tenant's v4)." }] };
    }
    if (header.keyId !== keyId) { problem(1, null, `The export was signed by key ${header.keyId}, not by the key given (${keyId}).`); }
    const hw = new Writer();
    hw.str("sovereign-audit-export-v" + header.version); hw.str(header.keyId); hw.optStr(header.tenant); hw.i64(header.from); hw.i64(header.to);
    hw.optI64(header.firstSequence); hw.optI64(header.lastSequence); hw.i64(header.createdAt);
    let headerOk = true;
    if (header.version >= 2) { try { hw.hash(header.entriesDigest); } catch (e) { headerOk = false; } }
    if (!headerOk || !(await verifySignature(key, header.signature, hw.done()))) { problem(1, null, "The header's signature does not verify with the key given."); }
    // v2 signs which lines are shown in full: SHA-256 over I64(sequence) of each entry line, in order.
    const shown = new Writer();

    let expected = header.firstSequence;
    let lastHash = null;
    let lastSequence = null;
    let checkpoint = null;
    let checked = 0;
    for (let i = 1; i < lines.length; i++) {
      const lineNo = i + 1;
      let row;
      try { row = JSON.parse(lines[i]); } catch (e) { problem(lineNo, null, "The line is not JSON."); continue; }
      if (checkpoint) { problem(lineNo, null, "Content after the closing checkpoint."); continue; }
      if (row.type === "gap") {
        // Version 4 (a tenant's export): a run of other tenants' entries shown by its ends; nothing inside re-hashes.
        if (header.version !== 4) { problem(lineNo, row.fromSequence, "A gap line outside a tenant's version 4 export hides entries."); }
        if (!Number.isInteger(row.fromSequence) || !Number.isInteger(row.toSequence) || row.toSequence < row.fromSequence) { problem(lineNo, null, "A gap line without a valid fromSequence..toSequence."); continue; }
        if (row.fromSequence !== expected) { problem(lineNo, row.fromSequence, `Expected sequence ${expected}, found ${row.fromSequence}: an entry is missing, inserted or reordered.`); }
        if (lastHash !== null && row.previousHash !== lastHash) { problem(lineNo, row.fromSequence, "Its previousHash is not the hash of the line before: the chain is broken."); }
        lastHash = row.hash; lastSequence = row.toSequence; expected = row.toSequence + 1;
      } else if (row.type === "entry" || row.type === "redacted") {
        if (row.sequence !== expected) { problem(lineNo, row.sequence, `Expected sequence ${expected}, found ${row.sequence}: an entry is missing, inserted or reordered.`); }
        if (lastHash !== null && row.previousHash !== lastHash) { problem(lineNo, row.sequence, "Its previousHash is not the hash of the line before: the chain is broken."); }
        if (row.type === "entry") {
          shown.i64(Number.isInteger(row.sequence) ? row.sequence : -1);
          const unknown = Object.keys(row).filter(k => !ENTRY_FIELDS.includes(k));
          if (unknown.length) { problem(lineNo, row.sequence, "Unexpected fields: " + unknown.join(", ")); }
          try {
            const actual = await entryHash(row);
            if (actual !== row.hash) { problem(lineNo, row.sequence, "The entry does not match its hash: it was modified."); }
          } catch (e) { problem(lineNo, row.sequence, "The entry cannot be read: " + e.message); }
          checked++;
        } else if (header.tenant === null) {
          problem(lineNo, row.sequence, "A redacted line in an export without a tenant filter hides an entry.");
        }
        lastHash = row.hash; lastSequence = row.sequence; expected = (typeof row.sequence === "number" ? row.sequence : expected) + 1;
      } else if (row.type === "checkpoint") {
        checkpoint = row;
        const cw = new Writer();
        cw.str("sovereign-audit-checkpoint-v1"); cw.i64(row.sequence);
        try { cw.hash(row.hash); } catch (e) { problem(lineNo, row.sequence, e.message); continue; }
        cw.i64(row.timestamp); cw.str(row.keyId);
        if (row.keyId !== keyId || !(await verifySignature(key, row.signature, cw.done()))) { problem(lineNo, row.sequence, "The checkpoint's signature does not verify with the key given."); }
        if (row.sequence !== lastSequence || row.hash !== lastHash) { problem(lineNo, row.sequence, `The checkpoint covers sequence ${row.sequence}, but the last line is ${lastSequence}.`); }
      } else {
        problem(lineNo, null, `Unknown line type '${row.type}'.`);
      }
    }
    if (header.lastSequence !== null) {
      if (lastSequence === null || lastSequence < header.lastSequence) { problem(lines.length, lastSequence, `The header covers up to sequence ${header.lastSequence}, but the lines end at ${lastSequence}: truncated.`); }
      if (!checkpoint) { problem(lines.length, lastSequence, "The export has no closing checkpoint: nothing signs its entries."); }
    } else if (lastSequence !== null || checkpoint) {
      problem(1, null, "The header says the range is empty, but lines follow.");
    }
    if (header.version >= 2 && (await sha256(shown.done())) !== header.entriesDigest) {
      problem(1, null, "The lines shown in full are not the ones the header signs: an entry was redacted, or a line removed or added, after the export was made.");
    }
    return { checked, problems };
  }

  // What a problem quotes from the file (a line's type, a key id, a chain's name) is whoever altered it's: a
  // bidirectional override in it reordered the rest of the line on screen. Every character that acts instead of
  // showing is written as its \uXXXX escape, as verify-export and tools/audit-verify.mjs show it.
  const ACTS = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\u2028\u2029]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
  const shown = text => String(text).replace(ACTS, c => "\\u" + c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0"));

  // ---- verify-export's --previous and --earlier (FORMAT.md: "Export of several chains", "Comparing with an earlier export") ----

  function fileLines(bytes) {
    const rows = [];
    for (const l of splitLines(new TextDecoder().decode(bytes))) { try { rows.push(JSON.parse(l)); } catch (e) { rows.push(null); } }
    return rows;
  }

  // Where each chain of a previous file ends: a version 3 header's list, or a version 1, 2 or 4 file's last line,
  // standing for the shared chain.
  function endsOf(rows) {
    const head = rows[0] || {};
    if (head.version === 3 && Array.isArray(head.chains)) {
      return head.chains.map(c => ({ chain: c.chain ?? null, lastSequence: c.lastSequence ?? null, lastHash: c.lastHash ?? null }));
    }
    const last = rows.slice(1).filter(r => r && (r.type === "entry" || r.type === "redacted" || r.type === "gap")).at(-1);
    return [{ chain: null, lastSequence: last ? (last.type === "gap" ? last.toSequence : last.sequence) : null, lastHash: last ? last.hash : null }];
  }

  // A file that must verify on its own with the same key before it says anything about this one.
  async function verifiesAlone(bytes, pem, role, add) {
    const alone = await verify(bytes, pem);
    if (alone.problems.length) {
      const p = alone.problems[0];
      add("Malformed", null, `The ${role} file does not verify (first problem: ${p.kind ? p.kind + ": " : ""}${p.what}).`);
    }
  }

  // A version 1, 2 or 4 archive file after a previous one: it starts at the entry after the previous file's last and
  // links to its hash, or with that last entry again (the newest entry stays in the log when older ones are archived).
  function checkContinues(rows, previousRows, add) {
    const fromOf = l => l.type === "gap" ? l.fromSequence : l.sequence, toOf = l => l.type === "gap" ? l.toSequence : l.sequence;
    const isChainLine = l => l && (l.type === "entry" || l.type === "redacted" || l.type === "gap");
    const earlier = previousRows.filter(isChainLine).at(-1), first = rows.slice(1).find(isChainLine);
    if (!earlier || !first) { add("SequenceGap", null, "One of the files has no entries: nothing shows that this one continues the previous one."); return; }
    if (fromOf(first) === toOf(earlier)) {
      if (toOf(first) !== fromOf(first) || first.hash !== earlier.hash) {
        add("ChainBreak", fromOf(first), `This file starts again at ${fromOf(first)}, the previous file's last entry, but not with its hash ${earlier.hash}.`);
      }
    } else if (fromOf(first) !== toOf(earlier) + 1 || first.previousHash !== earlier.hash) {
      add(fromOf(first) !== toOf(earlier) + 1 ? "SequenceGap" : "ChainBreak", fromOf(first),
        `This file starts at ${fromOf(first)} after ${first.previousHash}, not after the previous file's last entry ${toOf(earlier)} (${earlier.hash}).`);
    }
    const earlierLast = previousRows.filter(l => l && l.type === "entry").at(-1), firstEntry = rows.slice(1).find(l => l && l.type === "entry");
    if (earlierLast && firstEntry && firstEntry.timestamp < earlierLast.timestamp) {
      add("TimeReversed", firstEntry.sequence, `Its time is before entry ${earlierLast.sequence}'s in the previous file: times never decrease along the chain.`);
    }
  }

  // Every hash a file states, by chain and sequence: an entry or redacted line's own and its previous, a gap line's
  // ends, a checkpoint, a version 3 header's last hashes; which entries it shows in full; each chain's range.
  function statementsOf(rows, onHash) {
    const hashes = new Map(), full = new Set(), first = new Map(), last = new Map();
    let chain = null;
    const state = (c, sequence, hash) => {
      if (!(sequence >= 1)) { return; } // entry 1's previous hash is the chain's genesis
      const key = `${c ?? ""}|${sequence}`;
      if (onHash) { onHash(key, c, sequence, hash); } else { hashes.set(key, hash); }
    };
    const range = (c, from, to) => { const k = c ?? ""; if (!first.has(k)) { first.set(k, from); } last.set(k, Math.max(last.get(k) ?? 0, to)); };
    const head = rows[0] || {};
    for (const item of Array.isArray(head.chains) ? head.chains : []) {
      if (item && item.lastSequence != null && item.lastHash != null) { state(item.chain ?? null, item.lastSequence, item.lastHash); }
    }
    for (const l of rows.slice(1)) {
      if (!l) { continue; }
      if (l.type === "chain") { chain = l.chain ?? null; }
      else if (l.type === "entry" || l.type === "redacted") {
        range(chain, l.sequence, l.sequence);
        state(chain, l.sequence - 1, l.previousHash); state(chain, l.sequence, l.hash);
        if (l.type === "entry") { full.add(`${chain ?? ""}|${l.sequence}`); }
      } else if (l.type === "gap") {
        range(chain, l.fromSequence, l.toSequence);
        state(chain, l.fromSequence - 1, l.previousHash); state(chain, l.toSequence, l.hash);
      } else if (l.type === "checkpoint") { state(chain, l.sequence, l.hash); }
    }
    return { hashes, full, first, last };
  }

  // The later file is the same history as the earlier one wherever they overlap (the five rules of FORMAT.md).
  function compareWithEarlier(rows, earlierRows, add) {
    const iso = ms => Number.isSafeInteger(ms) ? new Date(ms).toISOString() : String(ms);
    const before = statementsOf(earlierRows), beforeHead = earlierRows[0] || {}, nowHead = rows[0] || {};
    const made = `the earlier export (made ${iso(beforeHead.createdAt)})`;
    let compared = 0;
    const reported = new Set();
    const now = statementsOf(rows, (key, c, sequence, hash) => {
      if (!before.hashes.has(key)) { return; }
      compared++;
      if (before.hashes.get(key) !== hash && !reported.has(key)) {
        reported.add(key);
        add("WitnessMismatch", sequence, `The ${made.slice(4)} states hash ${before.hashes.get(key)}, this one ${hash}: the operator signed two different histories.`, c);
      }
    });
    if (nowHead.tenant == null || nowHead.tenant === beforeHead.tenant) {
      for (const key of before.full) {
        const c = key.slice(0, key.lastIndexOf("|")), seq = Number(key.slice(key.lastIndexOf("|") + 1));
        if (!now.full.has(key) && now.first.has(c) && seq >= now.first.get(c) && seq <= now.last.get(c)) {
          add("OutOfScope", seq, `Shown in full in ${made} but not in this one, whose range holds it: hidden or replaced.`, c || null);
        }
      }
    }
    if (nowHead.from <= beforeHead.from && nowHead.to >= beforeHead.createdAt) {
      for (const [c, lastSeq] of before.last) {
        const ends = now.last.get(c) ?? 0;
        if (ends < lastSeq) { add("Truncated", ends + 1, `${made[0].toUpperCase() + made.slice(1)} holds entries up to ${lastSeq}; this one, of entries up to ${iso(nowHead.to)}, ends at ${ends}.`, c || null); }
      }
    }
    if (nowHead.createdAt < beforeHead.createdAt) {
      add("OutOfScope", null, `This export was made ${iso(nowHead.createdAt)}, before the earlier one (${iso(beforeHead.createdAt)}): it is older, not newer (the files given the wrong way round, or an old export handed over again).`);
    }
    if (compared === 0) {
      add("OutOfScope", null, "The two files state no hash at a common sequence, so nothing shows that they are one history: ask for an export whose range holds the earlier one's last entry.");
    }
    return compared;
  }

  // verify-export FILE [--previous P] [--earlier E]: this file, then what the other files say about it.
  async function verifyWith(bytes, pem, previousBytes, earlierBytes) {
    const previousRows = previousBytes ? fileLines(previousBytes) : null;
    const result = await verify(bytes, pem, previousRows ? endsOf(previousRows) : undefined);
    const rows = fileLines(bytes);
    const added = [];
    const adder = role => (kind, sequence, what, chain) => added.push({ kind, chain: chain ?? null, sequence, line: null, what, role });
    if (previousRows) {
      await verifiesAlone(previousBytes, pem, "previous", adder("previous"));
      if (!(rows[0] && rows[0].version === 3)) { checkContinues(rows, previousRows, adder("previous")); } // version 3 links each chain above
    }
    if (earlierBytes) {
      await verifiesAlone(earlierBytes, pem, "earlier", adder("earlier"));
      result.comparedWithEarlier = compareWithEarlier(rows, fileLines(earlierBytes), adder("earlier"));
    }
    if (added.length) {
      result.problems = [...result.problems, ...added];
      result.verdict = "tampered";
    }
    result.previousGiven = !!previousRows;
    result.earlierGiven = !!earlierBytes;
    return result;
  }

  function show(result) {
    const out = document.getElementById("verify-result");
    out.textContent = "";
    const verdict = document.createElement("p");
    verdict.id = "verdict";
    verdict.className = result.problems.length ? "bad" : result.verdict === "uncovered" ? "warn" : "ok";
    verdict.textContent = result.problems.length
      ? `Does not verify: ${result.problems.length} problem(s) in ${result.checked} entries checked.`
      : result.verdict === "uncovered"
        ? `Intact and signed by the operator's key (${result.checked} entries), but NOT covered: entries in it were not covered by a signed checkpoint of the log when it was exported.`
        : `Verified: ${result.checked} entries intact and signed by the operator's key.`
          + (result.previousGiven ? " It continues the previous file." : "")
          + (result.earlierGiven ? ` It agrees with the earlier export wherever both state a hash (${result.comparedWithEarlier} compared).` : "");
    if (result.verdict) { verdict.dataset.verdict = result.verdict; }
    out.appendChild(verdict);
    if (result.problems.length) {
      const list = document.createElement("ul");
      list.id = "verify-problems";
      for (const p of result.problems) {
        const item = document.createElement("li");
        const at = [p.line !== null && p.line !== undefined ? "line " + p.line : null, p.sequence !== null && p.sequence !== undefined ? "sequence " + p.sequence : null].filter(Boolean).join(", ") || "the file";
        if (p.role) { item.dataset.role = p.role; }
        if (p.kind) {
          // Version 3: the kind and chain verify-export names (the shared chain's and the file's own have none).
          item.dataset.kind = p.kind;
          if (p.chain !== null && p.chain !== undefined) { item.dataset.chain = p.chain; }
          item.textContent = shown(`${p.chain !== null && p.chain !== undefined ? "chain " + p.chain + ", " : ""}${at}: ${p.kind}: ${p.what}`);
        } else {
          item.textContent = shown(`${at}: ${p.what}`);
        }
        list.appendChild(item);
      }
      out.appendChild(list);
    }
    if (result.chains && result.chains.length) {
      // Each chain's head, coverage and verdict, as verify-export lists them.
      const table = document.createElement("table");
      table.id = "verify-chains";
      const head = table.createTHead().insertRow();
      for (const title of ["chain", "entries checked", "last", "covered through", "uncovered", "verdict"]) {
        const th = document.createElement("th"); th.scope = "col"; th.textContent = title; head.appendChild(th);
      }
      const body = table.createTBody();
      for (const c of result.chains) {
        const row = body.insertRow();
        row.dataset.chain = c.chain === null ? "" : c.chain;
        for (const value of [c.chain === null ? "(shared)" : c.chain, c.entries, c.lastSequence, c.coveredThrough, c.uncovered, c.verdict]) {
          row.insertCell().textContent = String(value);
        }
      }
      out.appendChild(table);
    }
  }

  const form = document.getElementById("verify-form");
  if (!form) { return; }
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const out = document.getElementById("verify-result");
    out.textContent = "Verifying…";
    try {
      if (!window.crypto || !crypto.subtle) { throw new Error("this page needs WebCrypto: open it over https, on localhost, or saved as a file."); }
      const file = document.getElementById("export-file").files[0];
      if (!file) { throw new Error("choose an export file."); }
      const other = async id => { const input = document.getElementById(id); const f = input && input.files[0]; return f ? new Uint8Array(await f.arrayBuffer()) : null; };
      show(await verifyWith(new Uint8Array(await file.arrayBuffer()), document.getElementById("public-key").value, await other("previous-file"), await other("earlier-file")));
    } catch (e) {
      out.textContent = "";
      const p = document.createElement("p");
      p.id = "verdict"; p.className = "bad"; p.textContent = "Cannot verify: " + e.message;
      out.appendChild(p);
    }
  });
})();
