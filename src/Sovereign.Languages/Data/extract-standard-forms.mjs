// Regenerates standard-forms.txt from the Hunspell dictionaries Debian ships for Croatian, Bosnian and Serbian
// (LibreOffice's dictionaries; Debian bookworm hunspell-hr, hunspell-bs, hunspell-sr 1:7.5.0-1), Node 18+:
//   apt-get update && apt-get install -y hunspell-hr hunspell-bs hunspell-sr
//   mkdir -p /tmp/hunspell-reader && (cd /tmp/hunspell-reader && npm init -y && npm install hunspell-reader@9.7.0)
//   node extract-standard-forms.mjs /usr/share/hunspell /tmp/hunspell-reader/node_modules/hunspell-reader
// (about a minute and 2 GB of memory: the Serbian dictionary expands to 3.2 million forms).
//
// Every dictionary is expanded with its affix rules (hunspell-reader, the reader cspell uses; forbidden words and
// forms allowed only inside compounds are left out), lower-cased, and the three are compared. A form that two of the
// dictionaries accept and the third rejects is written under the two that accept it:
//   [bs sr]  accepted by the Bosnian and Serbian dictionaries, rejected by the Croatian one (ko, niko, historija and
//            istorija, fudbal, joined futures such as pozvaću, -isati/-ovati verbs such as rezervisati, organizovati);
//   [hr bs]  accepted by the Croatian and Bosnian dictionaries, rejected by the Serbian one (tko, netko, tjedna,
//            općina, točno);
//   [sr]     the yat reflex: accepted by the Serbian dictionary only, and with one e written ije or je a form both the
//            Croatian and the Bosnian dictionary accept (mlečni: mliječni, železničke: željezničke, premestili:
//            premjestili, cveća: cvijeća). The Serbian dictionary accepts ijekavian forms too, so the ijekavian side is
//            not in the table (YatReflex recognises it by its shape).
// Left out, because the counts on the tuning corpus show them to be the dictionaries' coverage rather than the
// standards (SOURCES.md): other forms only one dictionary has (the Serbian one has 3.2 million forms, the Croatian 1.0
// million, the Bosnian 0.3 million), and forms the Croatian and Serbian dictionaries accept and the small Bosnian one
// lacks (Croatian, Bosnian and Serbian tuning words alike fall there, 1.6-1.8%). Dictionary entries written with a
// capital (names of places and people, abbreviations) are left out: they tell the topic, not the standard. Every form
// written is one the Bosnian or the Serbian dictionary accepts, so the file is a selection from their word lists.
import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

const root = process.argv[2] ?? '/usr/share/hunspell'
const readerPackage = process.argv[3] ?? '/tmp/hunspell-reader/node_modules/hunspell-reader'
const { IterableHunspellReader } = await import(pathToFileURL(path.join(readerPackage, 'dist', 'index.js')).href)
const output = path.join(path.dirname(new URL(import.meta.url).pathname), 'standard-forms.txt')

async function forms(name) {
  const reader = await IterableHunspellReader.createFromFiles(path.join(root, `${name}.aff`), path.join(root, `${name}.dic`))
  const result = new Set()
  for (const aff of reader.seqAffWords()) {
    if (aff.flags.isForbiddenWord || aff.flags.isOnlyAllowedInCompound) continue
    const word = aff.word.normalize('NFC')
    // Names and abbreviations (a capital in the dictionary) and entries with digits or dots are not evidence.
    if (word !== word.toLowerCase() || !/^[\p{L}\p{M}'-]+$/u.test(word)) continue
    result.add(word)
  }
  console.error(`${name}: ${result.size} forms`)
  return result
}

const hr = await forms('hr_HR')
const bs = await forms('bs_BA')
const sr = await forms('sr_Latn_RS')

const bsSr = [...bs].filter((w) => sr.has(w) && !hr.has(w)).sort()
const hrBs = [...bs].filter((w) => hr.has(w) && !sr.has(w)).sort()
const ijekavian = (w) => [...w].some((c, i) => c === 'e' && ['ije', 'je'].some((r) => {
  const form = w.slice(0, i) + r + w.slice(i + 1)
  return hr.has(form) && bs.has(form)
}))
const ekavian = [...sr].filter((w) => !hr.has(w) && !bs.has(w) && ijekavian(w)).sort()

const header = [
  '# Croatian, Bosnian and Serbian word forms that two of the three standards\' Hunspell dictionaries accept and the',
  '# third rejects, and ekavian forms only the Serbian one accepts whose ijekavian form the other two accept; generated',
  '# by extract-standard-forms.mjs (commands at its top) from Debian\'s hunspell-hr, hunspell-bs and hunspell-sr',
  '# 1:7.5.0-1 (LibreOffice dictionaries). A selection from the expanded word lists of the Bosnian dictionary (bs_BA:',
  '# GPL-2+ or LGPL-2.1+ or MPL-1.1) and the Serbian dictionary (sr_Latn_RS: Goran Rakic, Milos Popovic, Aleksandar',
  '# Urosevic; GPL-2+ or LGPL-2.1 or MPL-1.1), filtered with the Croatian dictionary (hr_HR: Denis Lackovic, Mirko Kos,',
  '# Kruno; LGPL or SISSL). This file is distributed under the Mozilla Public License 1.1. See SOURCES.md.',
  `# ${bsSr.length + hrBs.length + ekavian.length} forms. Format: a [codes] line naming the dictionaries that accept the forms below it.`,
]
const text = [...header, '[bs sr]', ...bsSr, '[hr bs]', ...hrBs, '[sr]', ...ekavian, ''].join('\n')
fs.writeFileSync(output, text)
console.error(`[bs sr] ${bsSr.length}, [hr bs] ${hrBs.length}, [sr] ${ekavian.length} -> ${output}`)
