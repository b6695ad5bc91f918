// Verifies a Sovereign audit export in the browser, with the operator's public key, following
// src/Sovereign.Residency/Audit/FORMAT.md (exports v1 and v2). Nothing leaves the page; it needs WebCrypto (any https page,
// localhost, or the page saved to disk and opened from a file).
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

  function verifySignature(key, signatureHex, payload) {
    if (!/^[0-9a-f]{128}$/.test(signatureHex || "")) { return Promise.resolve(false); }
    return crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, fromHex(signatureHex), payload);
  }

  async function verify(text, pem) {
    const problems = [];
    const problem = (line, sequence, what) => problems.push({ line, sequence, what });
    const { key, keyId } = await importKey(pem);
    const lines = text.split("\n");
    if (lines.length && lines[lines.length - 1] === "") { lines.pop(); }
    let header;
    try { header = JSON.parse(lines[0]); } catch (e) { return { checked: 0, problems: [{ line: 1, sequence: null, what: "The first line is not a JSON header." }] }; }
    if (header.type !== "header" || header.format !== "sovereign-audit-export" || (header.version !== 1 && header.version !== 2)) {
      return { checked: 0, problems: [{ line: 1, sequence: null, what: "Not a Sovereign audit export (v1 or v2)." }] };
    }
    if (header.keyId !== keyId) { problem(1, null, `The export was signed by key ${header.keyId}, not by the key given (${keyId}).`); }
    const hw = new Writer();
    hw.str(header.version === 2 ? "sovereign-audit-export-v2" : "sovereign-audit-export-v1"); hw.str(header.keyId); hw.optStr(header.tenant); hw.i64(header.from); hw.i64(header.to);
    hw.optI64(header.firstSequence); hw.optI64(header.lastSequence); hw.i64(header.createdAt);
    let headerOk = true;
    if (header.version === 2) { try { hw.hash(header.entriesDigest); } catch (e) { headerOk = false; } }
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
      if (row.type === "entry" || row.type === "redacted") {
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
    if (header.version === 2 && (await sha256(shown.done())) !== header.entriesDigest) {
      problem(1, null, "The lines shown in full are not the ones the header signs: an entry was redacted, or a line removed or added, after the export was made.");
    }
    return { checked, problems };
  }

  function show(result) {
    const out = document.getElementById("verify-result");
    out.textContent = "";
    const verdict = document.createElement("p");
    verdict.id = "verdict";
    verdict.className = result.problems.length ? "bad" : "ok";
    verdict.textContent = result.problems.length
      ? `Does not verify: ${result.problems.length} problem(s) in ${result.checked} entries checked.`
      : `Verified: ${result.checked} entries intact and signed by the operator's key.`;
    out.appendChild(verdict);
    if (result.problems.length) {
      const list = document.createElement("ul");
      list.id = "verify-problems";
      for (const p of result.problems) {
        const item = document.createElement("li");
        item.textContent = `line ${p.line}${p.sequence !== null && p.sequence !== undefined ? ", sequence " + p.sequence : ""}: ${p.what}`;
        list.appendChild(item);
      }
      out.appendChild(list);
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
      show(await verify(await file.text(), document.getElementById("public-key").value));
    } catch (e) {
      out.textContent = "";
      const p = document.createElement("p");
      p.id = "verdict"; p.className = "bad"; p.textContent = "Cannot verify: " + e.message;
      out.appendChild(p);
    }
  });
})();
