// Entry point of `shoal` (bin/shoal loads the compiled form of this file).
import { runCli } from './main.js';

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`shoal: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
