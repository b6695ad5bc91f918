// Renders every case in cases.json with the independent renderer @huggingface/jinja and writes Goldens/<name>.txt.
// The clock is fixed (strftime_now) so that goldens do not depend on the day they were made.
import { readFileSync, writeFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Template } from "@huggingface/jinja";

const FixedNow = new Date(2026, 6, 26, 12, 0, 0); // local time, as strftime_now reads it
const RealDate = Date;
globalThis.Date = class extends RealDate {
  constructor(...args) { if (args.length === 0) { super(FixedNow.getTime()); } else { super(...args); } }
  static now() { return FixedNow.getTime(); }
};

const here = dirname(fileURLToPath(import.meta.url));
const cases = JSON.parse(readFileSync(join(here, "cases.json"), "utf8"));
for (const c of cases) {
  const source = readFileSync(join(here, "Cases", c.template), "utf8");
  const context = JSON.parse(readFileSync(join(here, "Contexts", c.context), "utf8"));
  let output;
  try {
    output = new Template(source).render(context);
  } catch (error) {
    console.error(`${c.name}: ${error.message}`);
    process.exitCode = 1;
    continue;
  }
  writeFileSync(join(here, "Goldens", c.name + ".txt"), output, "utf8");
  console.log(`${c.name}: ${output.length} characters`);
}
