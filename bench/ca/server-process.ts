// The CA under test, in its own process (its own event loop and, on this 2-core machine, mostly its
// own core), so that the joiners' CPU does not sit on the CA's event loop. Talks to main.ts over IPC.
import { pino } from 'pino';

import { startCAFixture } from '../../ca/testing/fixture.js';

const fx = await startCAFixture({ record: false, logger: pino({ level: 'silent' }) });
process.send?.({ address: fx.address, workerToken: fx.ca.joinTokens.worker });
process.on('message', (msg: unknown) => {
  if (msg === 'close') void fx.close().then(() => process.exit(0));
  // CPU time the CA process has used so far (user + system, microseconds).
  if (msg === 'cpu') {
    const usage = process.cpuUsage();
    process.send?.({ cpuUs: usage.user + usage.system });
  }
});
// If the parent dies, do not linger.
process.on('disconnect', () => process.exit(0));
