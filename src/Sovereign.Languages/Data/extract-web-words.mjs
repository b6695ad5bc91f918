// Regenerates web-words.txt from Unicode's Unilex word frequencies (github.com/unicode-org/unilex, data/frequency;
// Unicode License v3, SPDX Unicode-3.0 / the files' own header Unicode-DFS-2016), Node 18+:
//   git clone https://github.com/unicode-org/unilex /tmp/unilex-repo   (commit b3a9ae2 was used)
//   node extract-web-words.mjs /tmp/unilex-repo/data/frequency 0.75 > web-words.txt
// (a few seconds).
//
// Unilex counts the words of web text crawled from sites written in each language (hr.txt 8.0, bs.txt 8.8 and
// sr-Latn.txt 9.9 million running words; each word's Frequency is per billion tokens, and the header gives the
// corpus size, so count = Frequency x size / 1e9; words seen fewer than 3 times are not listed). For Croatian,
// Bosnian and Serbian in Latin letters it writes, for every word, the log of its rate in each member's web text less
// the mean over the members (centred log-rates: what a naive Bayes over the members adds for that word), as
// extract-subtitle-words.mjs does for Malay and Indonesian. Rates are smoothed with one occurrence in the smallest
// corpus; a word missing from a list counts as 1.5 occurrences there (half the lists' cut of 3). Kept: words of
// Latin letters only (inner ' and - allowed), lower-cased (case variants summed), seen at least MIN_COUNT times in
// some member's text, whose centred log-rates differ from 0 by at least MIN_EVIDENCE for some member. Values are
// rounded to two decimals. Nothing else is taken from the lists: no text, only these numbers per word.
import fs from 'node:fs'
import path from 'node:path'

const root = process.argv[2] ?? '/tmp/unilex-repo/data/frequency'
const MIN_COUNT = 5
const MIN_EVIDENCE = Number(process.argv[3] ?? 0.75)   // 0.75 by cross-validation (0.25, 0.5, 0.75, 1 tried)
const group = { members: ['hr', 'bs', 'sr'], files: ['hr', 'bs', 'sr-Latn'] }
const word = /^[\p{Script=Latin}\p{M}]+(?:['-][\p{Script=Latin}\p{M}]+)*$/u

function load (file) {
  const counts = new Map()
  let size = 0
  for (const line of fs.readFileSync(path.join(root, `${file}.txt`), 'utf8').split('\n')) {
    const header = /^# Corpus-Size: (\d+)/.exec(line)
    if (header) { size = Number(header[1]); continue }
    if (line.startsWith('#') || line.startsWith('Form\t')) continue
    const [form, frequency] = line.split('\t')
    const f = Number(frequency)
    if (!form || !Number.isFinite(f) || f <= 0) continue
    const w = form.normalize('NFC').toLowerCase()
    if (word.test(w)) counts.set(w, (counts.get(w) ?? 0) + f)
  }
  if (size <= 0) throw new Error(`${file}: no Corpus-Size header`)
  for (const [w, f] of counts) counts.set(w, f * size / 1e9)
  return { counts, total: size, missing: 1.5 }
}

const lists = group.files.map(load)
const epsilon = 1 / Math.min(...lists.map(l => l.total))
const words = new Set(lists.flatMap(l => [...l.counts.keys()]))
const rows = []
for (const w of [...words].sort()) {
  if (!lists.some(l => (l.counts.get(w) ?? 0) >= MIN_COUNT)) continue
  const logs = lists.map(l => Math.log(((l.counts.get(w) ?? l.missing) / l.total) + epsilon))
  const mean = logs.reduce((a, b) => a + b, 0) / logs.length
  const centred = logs.map(v => v - mean)
  if (Math.max(...centred.map(Math.abs)) < MIN_EVIDENCE) continue
  rows.push(`${w} ${centred.map(v => v.toFixed(2)).join(' ')}`)
}

process.stdout.write([
  '# Centred log-rates of words in the web text of Croatian, Bosnian and Serbian (Latin letters): for each word, the log',
  '# of how often each member\'s text writes it less the mean over the members. Derived by extract-web-words.mjs',
  '# (commands and rules at its top) from Unicode\'s Unilex word frequencies (https://github.com/unicode-org/unilex,',
  '# data/frequency/hr.txt, bs.txt, sr-Latn.txt, commit b3a9ae2). Copyright (c) 2017-2024 Unicode, Inc. Used under the',
  '# Unicode License v3 (SPDX Unicode-3.0; the data files name Unicode-DFS-2016), whose notice follows:',
  '#   Permission is hereby granted, free of charge, to any person obtaining a copy of data files and any associated',
  '#   documentation (the "Data Files") or software and any associated documentation (the "Software") to deal in the',
  '#   Data Files or Software without restriction, including without limitation the rights to use, copy, modify,',
  '#   merge, publish, distribute, and/or sell copies of the Data Files or Software, and to permit persons to whom the',
  '#   Data Files or Software are furnished to do so, provided that either (a) this copyright and permission notice',
  '#   appear with all copies of the Data Files or Software, or (b) this copyright and permission notice appear in',
  '#   associated Documentation. THE DATA FILES AND SOFTWARE ARE PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND (the',
  '#   full text: src/Sovereign.Languages/Data/SOURCES.md and the Unilex repository\'s LICENSE).',
  '# Changes: only the numbers above per word, rounded; words every member writes alike, rare words and words with',
  '# digits or other scripts left out.',
  `# ${rows.length} words. Format: a [members] line with each member's running words, then "word value-per-member".`,
  `[${group.members.join(' ')}] ${lists.map((l, i) => `${group.members[i]}=${l.total}`).join(' ')}`,
  ...rows,
  '',
].join('\n'))
