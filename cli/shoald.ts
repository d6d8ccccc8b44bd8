// Entry point of `shoald` (bin/shoald loads the compiled form of this file). V8 settings first
// (daemon/v8-flags.ts), then the daemon: loaded after them so they cover its start-up too.
import { setFlagsFromString } from 'node:v8';
import { shoaldV8Flags } from './daemon/v8-flags.js';

for (const flag of shoaldV8Flags(process.execArgv, process.env['NODE_OPTIONS'])) setFlagsFromString(flag);

const { runDaemon } = await import('./daemon/main.js');

runDaemon(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`shoald: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
