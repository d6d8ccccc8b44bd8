// Entry point of `shoald` (bin/shoald loads the compiled form of this file).
import { runDaemon } from './daemon/main.js';

runDaemon(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`shoald: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
