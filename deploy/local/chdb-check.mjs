// Runs SQL files, in order and in one session, on an embedded current
// ClickHouse (chDB), and reports the first failing statement of a file as
// FILE:LINE. deploy/local/modern-clickhouse.sh uses it only when the shared
// modern-clickhouse tool is not next to the checkout, so the check never
// depends on where the repository was cloned.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(process.env.NHI_CHDB_DIR + "/");
const { Session } = require("chdb");

const dir = mkdtempSync(join(tmpdir(), "nhisentry-chdb-"));
const session = new Session(dir);
let failed = false;
try {
  console.log("# ClickHouse " + session.query("SELECT version()", "TSV").trim());
  for (const file of process.argv.slice(2)) {
    const text = readFileSync(file, "utf8");
    // Statements end with ';' at the end of a line, as in the migrations.
    let line = 1, start = 1, buf = "", count = 0, ok = true;
    for (const l of text.split("\n")) {
      if (buf.trim() === "") start = line;
      buf += l + "\n";
      line++;
      if (!/;\s*$/.test(l)) continue;
      const sql = buf.replace(/--[^\n]*\n/g, "\n").trim().replace(/;$/, "");
      buf = "";
      if (sql === "") continue;
      try {
        session.query(sql, "TSVWithNames");
        count++;
      } catch (e) {
        console.error(`${file}:${start}: ${String(e.message || e).split("\n")[0]}`);
        ok = false;
        break;
      }
    }
    if (ok) console.log(`ok ${file} (${count} statements)`);
    failed ||= !ok;
  }
} finally {
  session.cleanup?.();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
