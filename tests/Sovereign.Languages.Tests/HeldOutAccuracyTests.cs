using System.Globalization;
using System.Text;
using Xunit.Abstractions;

namespace Sovereign.Languages.Tests;

/// <summary>
/// Accuracy on the held-out sets: everyday sentences written for <c>Data/heldout*.txt</c> (the tuning corpus and contrast
/// words live in <c>src/Sovereign.Languages/Data</c>). Held-out 13, 14, 15 and 17-38 have never been used to build or tune
/// the detector (37 and 38: no word of theirs was added, but their first runs' misses were read before rounds 37 and 38
/// chose their rules, so they are no blind check of those; SOURCES.md) (round 30's confidence cap, which changes no answer, was chosen with held-out 1-29; SOURCES.md); held-out 1-8 (since session 22), 9 (since session 23), 10 (since session 24), 11 (since session 24's
/// second round), 12 (since session 25's round 13) and 16 (since session 35's round 17) are tuning material
/// (SOURCES.md), so their floors guard against regressions.
/// Targets: 95% overall and at most one miss in eight per language, every covered language on at once.
/// </summary>
public sealed class HeldOutAccuracyTests(ITestOutputHelper output)
{
    // Languages still below the per-language target on each set, with the floor they reach today (correct of n), so
    // that a regression fails while the gap stays visible. Measured on the last evaluation run (SOURCES.md, run 11).
    // Session 16 raised Croatian (held-out 2 and 3) and took Malay (held-out 2), Bosnian and Serbian (held-out 3) off
    // the list; it lowered Bosnian on held-out 1 from 6 to 5 (a loss of that run, recorded rather than hidden).
    // Session 17 added held-out 5 (Bosnian 6 of 8 on its first run, the unchanged detector); its change was reverted
    // after its evaluation run rather than any floor lowered (SOURCES.md, run 12). Session 19 added held-out 6 (its
    // first run, the unchanged detector: Afrikaans, outside the set, read as Dutch 4 times of 8; Bosnian 5 of 8); its
    // change (Afrikaans borrows the Dutch profile) took Afrikaans to 8 of 8 and the set to 96.6% (run 13). Session 20
    // added held-out 7 (every covered language; Croatian 6 of 8 before and after its change) and the spelling
    // dictionaries' evidence (run 14): Serbian to 9 of 10 on held-out 1 and 2, Bosnian to 7 of 8 on held-out 5 (off the
    // list), Croatian 7 -> 8 on held-out 3. Session 21 added held-out 8 (every covered language; its first run, the
    // unchanged detector: 488 of 494, no language below the target) and the verb complements and yat participles within
    // hr/bs/sr (run 15): Croatian 9 -> 10 on held-out 1 (off the list), Serbian 9 -> 10 on held-out 3, Bosnian 7 -> 8 on
    // held-out 4; held-out 8 unchanged. Session 22 added held-out 9 (every covered language; its first run, the
    // unchanged detector: 487 of 500, Bosnian 8 of 12, Indonesian 9 of 12, Serbian 13 of 16 below the target) and,
    // with held-out 1-8 then used as tuning material, contrast words from general knowledge of the standards (run 20):
    // Bulgarian 8 -> 9 on held-out 1 and Bosnian 8 -> 9, Serbian 12 -> 13 on held-out 4 (off the list), Bosnian 5 -> 6 on
    // held-out 1 and 6; held-out 3 and 4 reach 95% overall; held-out 9 unchanged. Session 23 added held-out 10 (every
    // covered language; its first run, the unchanged detector of session 22 (run 21): 485 of 500, Croatian 6 of 12 and
    // Bosnian 9 of 12 below the target); it is the set never tuned on from then. Session 24 made held-out 10 tuning
    // material and added held-out 11 (every covered language; its first run, on session 24's final detector (run 30),
    // and the same run on the unchanged detector of session 23 gave the same answers: 477 of 500 = 95.4%; below the
    // target Bosnian 9, Croatian 8, Indonesian 9 and Malay 9 of 12, Serbian 12 of 16, French 6 of 8, Portuguese 8 of 10:
    // the floors below are what was measured, the target is missed there); it is the set never tuned on from then.
    // Session 24's second round added held-out 12 (every covered language, French 10; its first run, on the unchanged
    // detector: 491 of 502 = 97.8%; below the target Bosnian 8, Croatian 10, Indonesian 10 and Malay 10 of 12) and made
    // held-out 11 tuning material: borrowed contrast evidence (French 6 -> 8 of 8 on held-out 11, off the list; 7 -> 8 on
    // held-out 8; Filipino 7 -> 8 on held-out 10) and the Iberian spellings (Spanish 9 -> 10 of 10 on held-out 11: 480 of
    // 500). Held-out 12 on the final detector: the same
    // answers as its first run (491 of 502), so its floors are its first run's; it is the set never tuned on from then.
    // Session 25's round 13 added held-out 13 (every covered language, held-out 12's distribution; its first run, on the
    // unchanged detector: 488 of 502 = 97.2%; below the target Bosnian 8, Croatian 8 and Malay 9 of 12) and made held-out
    // 12 tuning material; the round's three candidate changes (a within-group scale of the profiles' evidence, a letter
    // n-gram model per close group, 40 more Malay/Indonesian tuning sentences) gained nothing by cross-validation and on
    // held-out 1-12 together and were not kept, so held-out 13's floors are its first run's; it is the set never tuned
    // on from then. Session 26's round 14 added held-out 14 (every covered language, held-out 13's distribution; its
    // first run, on the round's detector with the Malay/Indonesian subtitle word rates: 486 of 502 = 96.8%, the unchanged
    // detector 484 in the same sitting; below the target Bosnian 8 and Croatian 8 of 12, their floors); the round's change
    // was chosen without held-out 13 or 14, so both are untuned measurements of it (held-out 13: 488 -> 490). The subtitles took Malay and Indonesian off the list where they were short: Malay 7 -> 8 on
    // held-out 1, 9 -> 12 on held-out 11, 10 -> 12 on held-out 12, 9 -> 11 on held-out 13; Indonesian 9 -> 11 on
    // held-out 9 and 11, 10 -> 11 on held-out 12 (one Malay sentence of held-out 6 lost, 8 -> 7 of 8, within the target).
    // Session 26's round 15 added held-out 15 (every covered language, held-out 14's distribution). Its first run, on
    // the round's candidate (Unilex web word rates within hr/bs/sr, chosen without any held-out set): 491 of 502; on the
    // unchanged detector, the same sitting: 488 of 502 = 97.2%, below the target Bosnian 7 and Croatian 9 of 12. The
    // candidate fell below five floors of held-out 3, 7, 8, 13 and 14 and was reverted, so held-out 15's floors are the
    // unchanged detector's; held-out 13, 14 and 15 are the sets never tuned on. Session 27's round 16 added held-out 16
    // (every covered language, held-out 15's distribution). Its first run, on the unchanged detector: 484 of 502 = 96.4%,
    // below the target Bosnian 8, Croatian 7 and Indonesian 10 of 12, their floors; held-out 13-16 are the sets never
    // tuned on. Session 35's round 17 added held-out 17 (every covered language, held-out 16's distribution). Its first
    // run, on the unchanged detector: 493 of 502 = 98.2%, below the target Bosnian 9 and Croatian 9 of 12, their floors;
    // held-out 16 became tuning material, and the round's change (Sanskrit and Bhojpuri by their grammar) moved no
    // held-out sentence. Session 36's round 18 added held-out 18 (every covered language, held-out 17's distribution).
    // Its first run, on the unchanged detector: 482 of 502 = 96.0%, below the target Bosnian 5 and Croatian 9 of 12,
    // Serbian 13 of 16 and Czech 7 of 10 (as Slovak twice), their floors. The round's ekavian fix (words the Croatian
    // and Bosnian text writes are not ekavian by stem or ending) raised Bosnian on held-out 1 from 6 to 7. Session 37's
    // round 19 added held-out 19 (every covered language, held-out 18's distribution; questions, requests and short
    // messages). Its first run, on the unchanged detector: 490 of 502 = 97.6%, below the target Bosnian 4 (as Serbian
    // six times, as Croatian twice) and Croatian 9 of 12 (as Serbian three times), their floors; Serbian 16 of 16 and
    // Czech 10 of 10. The round's changes, chosen without held-out 13-15 and 17-19 (the hr/bs/sr household, school,
    // law and road words, none of them in a set never tuned on unless the tuning corpus writes it; the Czech and Slovak
    // letters inside their group): Croatian 6 -> 7 on held-out 10, Czech 9 -> 10 on held-out 1.
    // Session 38's round 20 added held-out 20 (every covered language, held-out 19's distribution; new topics). Its first
    // run, on the unchanged detector: 495 of 502 = 98.6%, below the target Bosnian 8 of 12 (as Croatian twice, as
    // Serbian twice), its floor; Croatian and Indonesian 11 of 12, Norwegian 9 of 10. The round's English tuning
    // sentences made held-out 13's Irish and held-out 15's Dutch sentence right (und before), and its hr/bs/sr household
    // words (none in a set never tuned on) raised Croatian 8 -> 9 on held-out 11, Bosnian 8 -> 9 and Croatian 7 -> 8
    // on held-out 16 (tuning material).
    // Session 39's round 21 added held-out 21 (every covered language, held-out 20's distribution; health care and
    // ministry errands). Its first run, on the unchanged detector: 486 of 502 = 96.8%, below the target Bosnian 6 of 12
    // (as Croatian four times, as Serbian once, und once), Croatian 8 of 12 (as Serbian twice, und twice) and Serbian 12
    // of 16 (as Bosnian twice, as Croatian once; a Cyrillic sentence und, Macedonian runner-up), their floors; Galician
    // and Portuguese 9 of 10 (each read as the other on the pollen sentence).
    // Session 40's round 22 added held-out 22 (every covered language, held-out 21's distribution; household and errand
    // troubles). Its first run, on the unchanged detector: 491 of 502 = 97.8%, below the target Bosnian 6 of 12 (as
    // Croatian four times, as Serbian twice) and Croatian 10 of 12 (as Bosnian once, und once), their floors; Danish,
    // Spanish and French 9 of 10 (as Norwegian; und beside Asturian; und beside Occitan); Serbian 16 of 16.
    // The round's Serbian Cyrillic words against Macedonian (contrast-words.txt) raised held-out 21's Serbian 12 -> 13:
    // the Cyrillic sentence that was und beside Macedonian, which the round's brief had named (not a blind check).
    // Session 41's round 23 added held-out 23 (every covered language, held-out 22's distribution with Croatian and
    // Bosnian 16, Serbian 24 - 16 Latin, 8 Cyrillic - and Macedonian, outside the set, 12; small mishaps at home, in the
    // car and on holiday). Its first run, on the unchanged detector: 499 of 530 = 94.2%, below the overall target for
    // the first time since session 22, and below the per-language target Bosnian 6 of 16 (as Croatian six times, as
    // Serbian twice, und twice), Croatian 11 of 16 (as Bosnian three times, as Serbian twice), Serbian 20 of 24 (all four
    // misses in Latin letters; the eight Cyrillic sentences right, Macedonian 12 of 12 und), Czech 7 of 10 (as Slovak
    // three times) and Indonesian 10 of 12 (as Malay twice), their floors; Slovak, Norwegian and Swedish 9 of 10, Latvian,
    // Polish, Romanian and Slovenian 7 of 8, within the target.
    // Session 42's round 24 added held-out 24 (held-out 23's distribution; small complaints and requests at home, at work
    // and in town). Its first run, on the unchanged detector: 502 of 530 = 94.7%, below the overall target again, and
    // below the per-language target Bosnian 7 of 16 (as Serbian four times, as Croatian three times, as Slovenian once,
    // und once), Croatian 12 of 16 (as Bosnian twice, as Serbian twice), Serbian 18 of 24 (as Bosnian three times, as
    // Slovenian twice, as Croatian once), Slovenian 6 of 8 (as Serbian, und) and Norwegian 8 of 10 (as Danish twice),
    // their floors; Bulgarian (und), Czech (as Slovak), French (as Portuguese) and Swedish (as Danish) 9 of 10 and Tetum
    // 7 of 8 (und), within the target; Malay and Indonesian 12 of 12, Macedonian 12 of 12 und.
    // The round's Czech and Slovak subtitle rates (chosen on tuning material only) raised Czech on held-out 18 and 23 from
    // 7 to 9 of 10 (off the list: within the target now), held-out 23 to 501 of 530 (its overall floor) and Slovak 9 -> 10
    // on held-out 15; held-out 24 unchanged.
    // Session 43's round 25 added held-out 25 (held-out 24's distribution; small troubles at home, with the car and with
    // the bills). Its first run, on the unchanged detector (main 700454c): 512 of 530 = 96.6%, over the overall target,
    // and below the per-language target Bosnian 7 of 16 (as Croatian four times, as Serbian five times), Bulgarian 8 of
    // 10 (und twice, Macedonian the runner-up) and Norwegian 8 of 10 (as Danish twice), their floors; Croatian 14 of 16
    // (as Bosnian twice), Danish 9 of 10 (as Norwegian), Malay 11 of 12 (as Indonesian) and Dutch 7 of 8 (und), within
    // the target; Serbian 24 of 24, Slovenian 8 of 8, Macedonian 12 of 12 und.
    // The round's Danish/Norwegian/Swedish subtitle rates, with the rule that subtitles only reorder a group's members
    // (chosen on tuning material; the rule moved no held-out sentence on its own), raised held-out 1-24 from 10,178 to
    // 10,197 of 10,456, every gain Scandinavian (Norwegian 8 -> 10 of 10 on held-out 24, off the list; held-out 23 501 ->
    // 503, held-out 24 502 -> 505) and held-out 25 from 512 to 515 (Norwegian 8 -> 10, off the list; Danish 9 -> 10).
    // Then Slovenian beside Croatian, Bosnian and Serbian, reordered by Slovenian's subtitles against the three
    // standards' pooled ones: held-out 1-24 10,197 -> 10,203 (Serbian 12 -> 13 on held-out 11 and 18 -> 19 on held-out
    // 24, Croatian 9 -> 10 on held-out 17, Slovenian 7 -> 8 on held-out 14 and 23 and 6 -> 7 on held-out 24, off the
    // list), no sentence lost; held-out 25 unchanged (515).
    // Session 44's round 26 added held-out 26 (every covered language 10 sentences, the close groups more: Croatian and
    // Bosnian 16, Serbian 24 - 8 in Cyrillic letters -, Malay and Indonesian 14, da/no/sv, the Iberian four, cs/sk and
    // bg/ru/uk 12, Macedonian 12 outside the set; small troubles at home and on the way). Its first run, on the unchanged
    // detector (main b4b1b5f): 621 of 640 = 97.0%, over the overall target, and below the per-language target Bosnian 10
    // of 16 (as Serbian five times, as Croatian once), Croatian 11 of 16 (as Bosnian four times, und once) and Serbian 18
    // of 24 (as Bosnian four times, as Croatian once, und once; the eight Cyrillic sentences right), their floors;
    // Indonesian 13 of 14 (as Malay) and Icelandic 9 of 10 (und, Faroese the runner-up), within the target; Malay 14 of
    // 14, Bulgarian 12 of 12, Macedonian 12 of 12 und.
    // The round's Bulgarian/Macedonian alphabet rule (Macedonian takes no probability where the text writes ъ, щ, ю, я
    // or й; from the alphabets, chosen on no sentence) raised Bulgarian on held-out 16 and 24 from 9 to 10 and on
    // held-out 25 from 8 to 9 of 10 (off the list); held-out 1-24 10,203 -> 10,205, held-out 25 515 -> 516, held-out 26
    // unchanged (621), no sentence lost.
    // Session 45's round 27 added held-out 27 (held-out 25's distribution: every covered language 8, Croatian and Bosnian
    // 16, Serbian 24 - 8 in Cyrillic letters -, Malay and Indonesian 12, da/no/sv, the Iberian four, cs/sk and bg/ru/uk
    // 10, Macedonian 12 outside the set; small mishaps at home and on the way). Its first run, on the unchanged detector
    // (main c3eaf07): 515 of 532 = 96.8%, over the overall target, and below the per-language target Bosnian 5 of 16 (as
    // Croatian seven times, as Serbian four times); Croatian 14 of 16 (as Bosnian twice), Serbian 22 of 24 (as Croatian, a
    // Cyrillic sentence und beside Macedonian), Dutch 7 of 8 (und, Afrikaans the runner-up) and Portuguese 9 of 10 (as
    // Galician), within the target; Malay, Indonesian and Bulgarian right throughout, Macedonian 12 of 12 und.
    // The round's yat words (sjesti's participle sjeo, dio/udio, and r before the short reflex: rješenje; from the
    // grammar, and noticed on a development sentence of the round's writer, who also wrote held-out 27, so not a blind
    // check) raised Bosnian there from 5 to 6 of 16; held-out 1-26 unchanged.
    // Session 46's round 28 added held-out 28 (held-out 27's distribution; small troubles at home and on the way: an empty
    // ink cartridge, a shaved-off beard, a blister, a crowded train, ...). Its first run, on the unchanged detector (main
    // f73c389): 514 of 532 = 96.6%, over the overall target, and below the per-language target Croatian 9 of 16 (as
    // Serbian four times, as Bosnian three times) and Bosnian 11 of 16 (as Croatian three times, as Serbian twice), their
    // floors; Serbian 21 of 24 (as Bosnian twice, as Croatian once; the eight Cyrillic sentences right), Danish 9 of 10 (as
    // Norwegian), Russian 9 of 10 (as Ukrainian) and Dutch 7 of 8 (und, Afrikaans the runner-up), within the target;
    // Malay, Indonesian and Bulgarian right throughout, Macedonian 12 of 12 und.
    // The round's Bosnian blend (an ijekavian word and a word listed for Bosnian and Serbian against Croatian together
    // count one reflex word more for Bosnian; from the standards, chosen on no sentence) raised Bosnian on held-out 19
    // from 4 to 5 and on held-out 22 from 6 to 7 of 12; no other held-out sentence moved (held-out 28 unchanged, 514).
    // Session 47's round 29 added held-out 29 (held-out 28's distribution; small mishaps at home and on the way: a broken
    // teapot, porridge burnt onto the pot, lost luggage, jet lag, ...). Its first run, on the unchanged detector (main
    // 28aa8a7): 513 of 532 = 96.4%, over the overall target, and below the per-language target Bosnian 9 of 16 (as
    // Croatian four times, as Serbian three times) and Croatian 10 of 16 (as Bosnian three times, as Serbian three
    // times), their floors; Serbian 21 of 24 (as Croatian twice, as Bosnian once; the eight Cyrillic sentences right),
    // Estonian 7 of 8 (as Finnish), Indonesian 11 of 12 (as Malay) and Russian 9 of 10 (as Ukrainian), within the target;
    // Malay and Bulgarian right throughout, Macedonian 12 of 12 und.
    // The round's hr/bs/sr everyday words (Croatian months in the genitive, household, shop, work and apology words,
    // from general knowledge of the standards; none occurring in held-out 29, nor in another never-tuned set unless the
    // tuning corpus writes it) raised Bosnian on held-out 14 from 8 to 9 of 12 (uveče, which the tuning corpus writes
    // too); no held-out sentence lost, held-out 29 unchanged (513). Before the never-tuned-set rule was applied, the
    // same list with ocat, škare/makaze, gumb/dugme and a few more also raised held-out 20, 26 and 27 by five sentences:
    // those words were then dropped, as the rule asks, not kept for what they moved.
    // Session 48's round 30 added held-out 30 (held-out 29's distribution; small troubles at home and on the way: a magpie
    // and a teaspoon, a scooter's wheel, a snowball, a chicken not defrosted, ...). Its first run, on the unchanged
    // detector (main 32f7ffa): 513 of 532 = 96.4%, over the overall target, and below the per-language target Bosnian 5
    // of 16 (as Croatian nine times, as Serbian twice), its floor; Croatian 14 of 16 (as Bosnian twice), Serbian 22 of 24
    // (as Croatian, and one Cyrillic sentence as Russian), Icelandic 7 of 8 (und, Faroese the runner-up), Norwegian 9 of
    // 10 (as Danish), Russian 9 of 10 (as Serbian) and Slovenian 7 of 8 (as Czech), within the target; Malay, Indonesian
    // and Bulgarian right throughout, Macedonian 12 of 12 und. The round's change (an evidence-free hr/bs/sr answer reports
    // at most EvidenceFreeConfidence) changes confidences only, no answer.
    // Session 49's round 31 added held-out 31 (held-out 30's distribution; small troubles at home and on the way: a tick on
    // the dog, a fishbone, a crab, lipstick on the mirror, a burst garden hose, ...). Its first run, on the unchanged
    // detector (main b867aa6): 510 of 532 = 95.9%, over the overall target, and below the per-language target Bosnian 7
    // of 16 (as Croatian six times, as Serbian twice, und once), Croatian 10 of 16 (as Serbian four times, as Bosnian
    // once, und once) and Serbian 20 of 24 (as Croatian three times, as Bosnian once; the eight Cyrillic sentences
    // right), their floors; French 7 of 8 (und), Slovenian 7 of 8 (as Slovak) and Macedonian 11 of 12 und (one as
    // Bulgarian 0.95), within the target; Malay, Indonesian and Bulgarian right throughout.
    // Session 50's round 32 added held-out 32 (held-out 31's distribution; a genre no earlier set used: small joys and
    // good news - a four-leaf clover, fireflies, a butterfly at the bus stop, grandmother turning ninety, ...). Its first
    // run, on the unchanged detector (main 56f02b0): 513 of 532 = 96.4%, over the overall target, and below the
    // per-language target Bosnian 9 of 16 (as Croatian five times, as Serbian twice) and Croatian 8 of 16 (as Bosnian
    // five times, as Serbian twice, und once), their floors; Serbian 23 of 24 (as Croatian; the eight Cyrillic sentences
    // right), Malay 11 of 12 (as Indonesian), Indonesian 11 of 12 (as Malay) and Norwegian 9 of 10 (und) within the
    // target; Bulgarian, Russian, Ukrainian and Slovenian right throughout, Macedonian 12 of 12 und. The round's kept
    // change (function words of languages outside the set) moved no held-out sentence; its two yat-reflex fixes traded
    // a Bosnian and a Serbian sentence on held-out 10 and 28 and were not kept (docs/benchmarks.md, round 32).
    // Session 51's round 33 added held-out 33 (held-out 32's distribution; a theme no earlier set used: hobbies, sport and
    // music in spare time - the accordion, a choir's concert, badminton with grandfather, a crocheted hat, a half
    // marathon, ...). Its first run, on the unchanged detector (main a783f0f): 513 of 532 = 96.4%, over the overall
    // target, and below the per-language target Bosnian 8 of 16 (as Serbian four times, as Croatian three times, und
    // once), Croatian 13 of 16 (as Serbian twice, as Bosnian once) and Galician 8 of 10 (as Portuguese, as Spanish),
    // their floors; Serbian 21 of 24 (as Bosnian twice, as Croatian once; the eight Cyrillic sentences right), Malay 11
    // of 12 (as Indonesian), Indonesian 11 of 12 (as Malay) and Norwegian 9 of 10 (as Danish) within the target;
    // Bulgarian, Russian, Ukrainian, Czech, Slovak and Slovenian right throughout, Macedonian 12 of 12 und.
    // The round's ekavian-stem fix (a stem counts only before an ending) moved no held-out answer. Its -ij- verb fix
    // (round 32's, measured again: pijem, dobijem, razbijena, presavijenu are no yat) raised Serbian on held-out 4, 10
    // and 21 (13 -> 14, never tuned on) and lowered Bosnian on held-out 10 from 9 to 8: the lost sentence ("Sto u kafani
    // se klimao, pa smo ispod noge podmetnuli presavijenu salvetu.") stands word for word in held-out 10's Bosnian and
    // Serbian blocks, so one of the two is always wrong; it was Bosnian only through presavijenu's spurious reflex.
    // Held-out 33 has no such verb form: no sentence of it moved.
    // Session 52's round 34 added held-out 34 (held-out 33's distribution; a new theme: cooking, baking and meals at
    // home). Its first run, on the unchanged detector (main 60904f8): 513 of 532 = 96.4%, over the overall target, and
    // below the per-language target Bosnian 7 of 16 (as Serbian six times, as Croatian three times) and Croatian 10 of
    // 16 (as Serbian five times, as Bosnian once), their floors; Serbian 21 of 24 (Cyrillic 7 of 8: one und beside
    // Macedonian) and Bulgarian 9 of 10 (as Serbian) within it; Galician, Malay and Indonesian right throughout. Every
    // miss of Bosnian and Croatian stays within hbs (48 of 48 Latin hr/bs/sr sentences right by group). The round
    // changed no answer (it adds the group and member_decided), so held-out 34 remains never tuned on.
    // Session 53's round 35 added held-out 35 (held-out 34's distribution; a new theme: the weather, the seasons and the
    // garden). Its first run, on the unchanged detector (main be22c23): 520 of 532 = 97.7%, over the overall target, and
    // below the per-language target Bosnian 13 of 16 (as Croatian three times) and Croatian 12 of 16 (as Bosnian three
    // times, as Serbian once), their floors; Serbian 21 of 24 (as Bosnian once, as Croatian twice; the eight Cyrillic
    // sentences right), Malay 11 of 12 (as Indonesian) and French 7 of 8 (und, Walloon the runner-up) within it;
    // Galician, Portuguese, Spanish, Bulgarian and Indonesian right throughout, Macedonian 12 of 12 und. Every miss of
    // Bosnian, Croatian and Serbian stays within hbs, and each was an undecided member (member_decided false).
    // Session 54's round 36 added held-out 36 (held-out 35's distribution; a new theme: children, school and homework).
    // Its first run, on the unchanged detector (main 5efb4ce): 515 of 532 = 96.8%, over the overall target, and below
    // the per-language target Bosnian 8 of 16 (as Croatian four times, one of them decided at 0.95, as Serbian twice,
    // und twice) and Serbian 19 of 24 (Latin 12 of 16: as Croatian twice, as Bosnian twice; Cyrillic 7 of 8: und beside
    // Macedonian), their floors; Croatian 14 of 16 (und, as Bosnian), Czech 9 of 10 (und) and Portuguese 9 of 10 (as
    // Galician) within it; Malay, Indonesian, Galician, Spanish, Catalan, Danish, Norwegian, Swedish, Slovak, Bulgarian,
    // Russian and Ukrainian right throughout, Macedonian 12 of 12 und. The round's changes (the future's syntax, a few
    // contrast words, und naming its group) move no answer of it or of any other set.
    // Session 55's round 37 added held-out 37 (held-out 36's distribution with Serbian 28, 12 of them Cyrillic; a new
    // theme: work and the office). Its first run, on the unchanged detector (main b07c1ce's code): 520 of 536 = 97.0%,
    // over the overall target, and below the per-language target Bosnian 8 of 16 (as Croatian six times, one of them
    // decided at 0.99 with idući, a word every standard writes; as Serbian once; und once) and Croatian 11 of 16 (as
    // Bosnian twice, as Serbian twice, und once), their floors; Serbian 25 of 28 (Latin 13 of 16,
    // as Bosnian three times; Cyrillic 12 of 12) within it; every other language right throughout, Macedonian 12 of 12
    // und. Eleven of the sixteen hr/bs/sr misses carry none of the standards' evidence. The round's changes (Serbian
    // Cyrillic words, idući dropped, općenito, ćerka and preduzeće moved to the standards that write them) move no
    // answer of held-out 37 (the idući sentence stays Croatian, 0.99 -> 0.91, by the word model) and one of held-out 36
    // (its Cyrillic und, now Serbian).
    // Session 56's round 38 added held-out 38 (held-out 37's distribution; a new theme: travel and public transport).
    // Its first run, on the unchanged detector (main 7d0891f's code): 521 of 536 = 97.2%, over the overall target, and
    // below the per-language target Bosnian 9 of 16 (as Croatian three times, as Serbian three times, one of them decided
    // at 0.99; und once), Serbian 24 of 28 (Latin 13 of 16: as Bosnian, as Croatian, und beside Latin; Cyrillic 11 of
    // 12: und beside Macedonian) and Indonesian 10 of 12 (as Malay twice, decided at 0.89 and 0.86), their floors;
    // Croatian 14 of 16 (as Bosnian, und beside Latin) within it; every other language right throughout, Macedonian 12
    // of 12 und. The round's changes, from the alphabets (Macedonian writes no ђ or ћ; Latin no č, ž, š, å, where
    // Lingua gave it the lead) and Interslavic's spellings, moved three of held-out 38's answers right (Serbian 24 -> 26,
    // off the list: a Cyrillic und beside Macedonian and a Latin und beside Latin; Croatian 14 -> 15, und beside Latin)
    // and one Bosnian und to Croatian, and two of earlier sets (held-out 18's Slovenian and held-out 32's Norwegian und
    // beside Latin); none lost. The round's engineer, who wrote held-out 38, read its misses before choosing the rules,
    // so held-out 38 is no blind check of them.
    private static readonly Dictionary<string, Dictionary<string, int>> KnownShortfalls = new(StringComparer.Ordinal)
    {
        [TestData.FirstHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 7, ["ms"] = 8 },
        [TestData.SecondHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 7, ["hr"] = 8 },
        [TestData.ThirdHeldOut] = new(StringComparer.Ordinal) { ["hr"] = 8 },
        [TestData.FourthHeldOut] = new(StringComparer.Ordinal) { ["hr"] = 8 },
        [TestData.FifthHeldOut] = new(StringComparer.Ordinal),
        [TestData.SixthHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 6 },
        [TestData.SeventhHeldOut] = new(StringComparer.Ordinal) { ["hr"] = 6 },
        [TestData.EighthHeldOut] = new(StringComparer.Ordinal),
        [TestData.NinthHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 8, ["sr"] = 13 },
        [TestData.TenthHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 8, ["hr"] = 7 },
        [TestData.EleventhHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 9, ["hr"] = 9, ["pt"] = 8, ["sr"] = 13 },
        [TestData.TwelfthHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 8, ["hr"] = 10 },
        [TestData.ThirteenthHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 8, ["hr"] = 8 },
        [TestData.FourteenthHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 9, ["hr"] = 8 },
        [TestData.FifteenthHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 7, ["hr"] = 9 },
        [TestData.SixteenthHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 9, ["hr"] = 8, ["id"] = 10 },
        [TestData.SeventeenthHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 9, ["hr"] = 10 },
        [TestData.EighteenthHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 5, ["hr"] = 9, ["sr"] = 13 },
        [TestData.NineteenthHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 5, ["hr"] = 9 },
        [TestData.TwentiethHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 8 },
        [TestData.TwentyFirstHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 6, ["hr"] = 8, ["sr"] = 14 },
        [TestData.TwentySecondHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 7, ["hr"] = 10 },
        [TestData.TwentyThirdHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 6, ["hr"] = 11, ["id"] = 10, ["sr"] = 20 },
        [TestData.TwentyFourthHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 7, ["hr"] = 12, ["sr"] = 19 },
        [TestData.TwentyFifthHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 7 },
        [TestData.TwentySixthHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 10, ["hr"] = 11, ["sr"] = 18 },
        [TestData.TwentySeventhHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 6 },
        [TestData.TwentyEighthHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 11, ["hr"] = 9 },
        [TestData.TwentyNinthHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 9, ["hr"] = 10 },
        [TestData.ThirtiethHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 5 },
        [TestData.ThirtyFirstHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 7, ["hr"] = 10, ["sr"] = 20 },
        [TestData.ThirtySecondHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 9, ["hr"] = 8 },
        [TestData.ThirtyThirdHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 8, ["gl"] = 8, ["hr"] = 13 },
        [TestData.ThirtyFourthHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 7, ["hr"] = 10 },
        [TestData.ThirtyFifthHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 13, ["hr"] = 12 },
        [TestData.ThirtySixthHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 8, ["sr"] = 20 },
        [TestData.ThirtySeventhHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 8, ["hr"] = 11 },
        [TestData.ThirtyEighthHeldOut] = new(StringComparer.Ordinal) { ["bs"] = 9, ["id"] = 10 },
    };

    /// <summary>The overall target.</summary>
    private const double OverallTarget = 0.95;

    // Overall accuracy where a set is still short of the target: none since session 22 (the third set had 93 of 98 and
    // the fourth 152 of 162 before it; 94 and 154 after).
    // Held-out 23's first run (session 41, round 23): 499 of 530, under 95% (recorded rather than hidden); held-out 24's
    // (session 42, round 24): 502 of 530. Round 25's Scandinavian subtitle rates raised held-out 23 to 503 and held-out
    // 24 to 505 of 530 (95.3%, over the target).
    private static readonly Dictionary<string, double> OverallShortfalls = new(StringComparer.Ordinal)
    {
        [TestData.TwentyThirdHeldOut] = 503.0 / 530,
    };

    [Theory]
    [InlineData(TestData.FirstHeldOut)]
    [InlineData(TestData.SecondHeldOut)]
    [InlineData(TestData.ThirdHeldOut)]
    [InlineData(TestData.FourthHeldOut)]
    [InlineData(TestData.FifthHeldOut)]
    [InlineData(TestData.SixthHeldOut)]
    [InlineData(TestData.SeventhHeldOut)]
    [InlineData(TestData.EighthHeldOut)]
    [InlineData(TestData.NinthHeldOut)]
    [InlineData(TestData.TenthHeldOut)]
    [InlineData(TestData.EleventhHeldOut)]
    [InlineData(TestData.TwelfthHeldOut)]
    [InlineData(TestData.ThirteenthHeldOut)]
    [InlineData(TestData.FourteenthHeldOut)]
    [InlineData(TestData.FifteenthHeldOut)]
    [InlineData(TestData.SixteenthHeldOut)]
    [InlineData(TestData.SeventeenthHeldOut)]
    [InlineData(TestData.EighteenthHeldOut)]
    [InlineData(TestData.NineteenthHeldOut)]
    [InlineData(TestData.TwentiethHeldOut)]
    [InlineData(TestData.TwentyFirstHeldOut)]
    [InlineData(TestData.TwentySecondHeldOut)]
    [InlineData(TestData.TwentyThirdHeldOut)]
    [InlineData(TestData.TwentyFourthHeldOut)]
    [InlineData(TestData.TwentyFifthHeldOut)]
    [InlineData(TestData.TwentySixthHeldOut)]
    [InlineData(TestData.TwentySeventhHeldOut)]
    [InlineData(TestData.TwentyEighthHeldOut)]
    [InlineData(TestData.TwentyNinthHeldOut)]
    [InlineData(TestData.ThirtiethHeldOut)]
    [InlineData(TestData.ThirtyFirstHeldOut)]
    [InlineData(TestData.ThirtySecondHeldOut)]
    [InlineData(TestData.ThirtyThirdHeldOut)]
    [InlineData(TestData.ThirtyFourthHeldOut)]
    [InlineData(TestData.ThirtyFifthHeldOut)]
    [InlineData(TestData.ThirtySixthHeldOut)]
    [InlineData(TestData.ThirtySeventhHeldOut)]
    [InlineData(TestData.ThirtyEighthHeldOut)]
    public void Detect_HeldOutSentences_MeetTheAccuracyTargets(string file)
    {
        var detector = TestData.DefaultDetector;
        var samples = TestData.HeldOut(file);
        if (file is TestData.FirstHeldOut or TestData.SeventhHeldOut or TestData.EighthHeldOut or TestData.NinthHeldOut or TestData.TenthHeldOut or TestData.EleventhHeldOut or TestData.TwelfthHeldOut or TestData.ThirteenthHeldOut or TestData.FourteenthHeldOut or TestData.FifteenthHeldOut or TestData.SixteenthHeldOut or TestData.SeventeenthHeldOut or TestData.EighteenthHeldOut or TestData.NineteenthHeldOut or TestData.TwentiethHeldOut or TestData.TwentyFirstHeldOut or TestData.TwentySecondHeldOut)
        {
            Assert.Equal(LanguageCatalog.Covered.Order(StringComparer.Ordinal), samples.Keys.Order(StringComparer.Ordinal));
        }
        else if (file is TestData.TwentyThirdHeldOut or TestData.TwentyFourthHeldOut or TestData.TwentyFifthHeldOut or TestData.TwentySixthHeldOut or TestData.TwentySeventhHeldOut or TestData.TwentyEighthHeldOut or TestData.TwentyNinthHeldOut or TestData.ThirtiethHeldOut or TestData.ThirtyFirstHeldOut or TestData.ThirtySecondHeldOut or TestData.ThirtyThirdHeldOut or TestData.ThirtyFourthHeldOut or TestData.ThirtyFifthHeldOut or TestData.ThirtySixthHeldOut or TestData.ThirtySeventhHeldOut or TestData.ThirtyEighthHeldOut)
        {
            // Every covered language and Macedonian, outside the set (the Serbian Cyrillic sentences' translations).
            Assert.Equal(LanguageCatalog.Covered.Append("mk").Order(StringComparer.Ordinal), samples.Keys.Order(StringComparer.Ordinal));
        }

        var table = new StringBuilder();
        int total = 0, right = 0;
        var failures = new List<string>();
        foreach (var (language, sentences) in samples.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            Assert.True(sentences.Count >= 8, $"{language}: only {sentences.Count} held-out sentences");
            // A language outside the configured set (Macedonian in the fourth set) is right only as und.
            var expected = detector.Languages.Contains(language) ? language : LanguageDetection.Undetermined;
            var misses = sentences.Select(s => (Text: s, Detection: detector.Detect(s))).Where(x => x.Detection.Language != expected).ToList();
            var correct = sentences.Count - misses.Count;
            total += sentences.Count;
            right += correct;
            table.AppendLine(CultureInfo.InvariantCulture, $"{language,-4} {correct,2}/{sentences.Count}  {string.Join("  ", misses.Select(m => $"{m.Detection.Language}({m.Detection.Confidence:F2})"))}");

            var allowedMisses = sentences.Count / 8;
            if (KnownShortfalls[file].TryGetValue(language, out var floor))
            {
                if (correct < floor)
                {
                    failures.Add($"{language}: {correct}/{sentences.Count}, below its recorded floor {floor}");
                }
            }
            else if (misses.Count > allowedMisses)
            {
                failures.Add($"{language}: {misses.Count} misses of {sentences.Count} (at most {allowedMisses})");
            }
        }

        var overall = (double)right / total;
        table.AppendLine(CultureInfo.InvariantCulture, $"overall {right}/{total} = {overall:P1}");
        output.WriteLine(table.ToString());

        var overallFloor = OverallShortfalls.GetValueOrDefault(file, OverallTarget);
        Assert.True(overall >= overallFloor, $"overall accuracy {overall:P1} < {overallFloor:P1}");
        Assert.True(failures.Count == 0, string.Join("; ", failures));
    }

    // Every language of the catalog configured (an operator who switches every supported language on): the languages
    // added in session 33 without a Lingua model (Faroese, Cebuano, Scottish Gaelic, Occitan, Konkani, ...) borrow only
    // a tenth of their neighbours' Lingua share even when configured. With the full share they took 45 covered
    // held-out sentences (11 Irish, 9 Icelandic, 6 Filipino, 5 French, 4 Marathi), and nine languages fell below 7 of 8
    // in some set; with a tenth they take 7 (6,232 -> 6,225 of 6,384 correct), and when configured they are told
    // apart: 146 of the 160 sentences of out of set 1 come back as their own language. (Indonesian, short of 7 of 8 in
    // held-out 16 with the covered set too, is guarded by the per-set floors.) Session 36 added held-out 18 and seven
    // more such languages (Aragonese, Venetian, Low German, Minangkabau, Balinese, Walloon, Ilocano): 7,200 of the
    // 7,388 covered sentences of held-out 1-18 right with every catalog language on, as many as with the covered set.
    // Session 38's round 20 (held-out 1-20, with held-out 19 and 20 in the count): 8,189 right, again as many as with
    // the covered set (7,204 + 490 + 495); it had stayed at 7,200 while sets were added. The round's hr/bs/sr words:
    // 8,193 (the covered set gained the same four sentences). Round 21 (held-out 21 in the count): 8,679, as many as
    // with the covered set (8,193 + 486), the floor since.
    [Fact]
    public void Detect_EveryCatalogLanguageOn_KeepsTheCoveredLanguagesAndFindsTheAddedOnes()
    {
        var detector = new LanguageDetector(new LanguageDetectorOptions { Languages = [.. LanguageCatalog.All.Select(l => l.Code)] });
        var neighbours = new HashSet<string>(["ga", "is", "fil", "fr", "mr", "ca", "es", "de", "nl", "tr", "hi"], StringComparer.Ordinal);
        var correct = 0;
        var below = new List<string>();
        foreach (var file in TestData.HeldOutFiles)
        {
            foreach (var (language, sentences) in TestData.HeldOut(file))
            {
                var right = sentences.Count(s => detector.Detect(s).Language == language);
                correct += right;
                if (neighbours.Contains(language) && right * 8 < sentences.Count * 7)
                {
                    below.Add($"{file} {language}: {right}/{sentences.Count}");
                }
            }
        }

        var added = TestData.HeldOut("out-of-set-1.txt").Sum(set => set.Value.Count(s => detector.Detect(s).Language == set.Key));
        output.WriteLine(FormattableString.Invariant($"covered held-out sentences right: {correct}; out of set 1 found as their own language: {added}"));

        Assert.True(below.Count == 0, string.Join("; ", below));
        Assert.True(correct >= 8_679, $"{correct} covered held-out sentences right");
        Assert.True(added >= 146, $"{added} of 160 out-of-set sentences found as their own language");
    }

    // Detection is deterministic (round 27 looked into held-out 24 moving 505 -> 507 -> 508 on main: each step was a
    // recorded change, and one stale incremental build): a second detector, reading the same sentences in the reverse
    // order, gives the same answer, confidence and runner-up for every sentence of held-out 24 and 27.
    [Fact]
    public void Detect_AnotherDetectorInAnotherOrder_SameAnswers()
    {
        var sentences = new[] { TestData.TwentyFourthHeldOut, TestData.TwentySeventhHeldOut }
            .SelectMany(f => TestData.HeldOut(f).Values).SelectMany(s => s).ToList();
        var first = sentences.Select(TestData.DefaultDetector.Detect).ToList();
        var fresh = new LanguageDetector();
        var second = Enumerable.Reverse(sentences).Select(fresh.Detect).Reverse().ToList();

        var differ = sentences.Where((_, i) => first[i] != second[i]).ToList();
        Assert.True(differ.Count == 0, $"{differ.Count} sentences answered differently");
    }

    [Fact]
    public void HeldOut_SentencesAreEverydayLength_AndNotInTheTuningCorpus()
    {
        var tuning = LanguageProfiles.LoadCorpus().Values.SelectMany(s => s).ToHashSet(StringComparer.Ordinal);
        foreach (var (language, sentences) in TestData.HeldOutFiles.SelectMany(file => TestData.HeldOut(file)))
        {
            foreach (var sentence in sentences)
            {
                Assert.DoesNotContain(sentence, tuning);
                Assert.InRange(LanguageTax.CountCharacters(sentence), 10, 120);
            }
        }
    }
}
