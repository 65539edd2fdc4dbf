// The .d.ts files shipped beside the browser modules are generated from their JSDoc by
// tsc, so they cannot drift from the code: `--write` regenerates them, `--check` (make
// lint) fails if the shipped ones differ from what tsc generates now.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..");
const STATIC = join(ROOT, "src", "silentauth", "web", "static");
const MODULES = ["silentauth", "silentauth-axios", "silentauth-realtime"];
const HEADER = "// Generated from the JSDoc of the .js file beside it by tests/web/types.mjs: do not edit.\n";

const mode = process.argv[2];
if (mode !== "--write" && mode !== "--check") {
  console.error("usage: node tests/web/types.mjs --write | --check");
  process.exit(2);
}
const out = mkdtempSync(join(tmpdir(), "silentauth-dts-"));
try {
  execFileSync(join(HERE, "node_modules", ".bin", "tsc"), [
    "-p", join(ROOT, "tsconfig.json"), "--noEmit", "false", "--declaration", "--emitDeclarationOnly",
    "--outDir", out,
  ], { stdio: "inherit" });
  const stale = [];
  for (const name of MODULES) {
    const generated = HEADER + readFileSync(join(out, `${name}.d.ts`), "utf8");
    const shipped = join(STATIC, `${name}.d.ts`);
    let current = null;
    try { current = readFileSync(shipped, "utf8"); } catch { /* not there yet */ }
    if (current === generated) continue;
    if (mode === "--write") writeFileSync(shipped, generated);
    else stale.push(shipped);
  }
  if (stale.length) {
    console.error(`out of date (run: node tests/web/types.mjs --write): ${stale.join(", ")}`);
    process.exit(1);
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
