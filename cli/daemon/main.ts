// shoald's entry point: parse flags, run the daemon until SIGTERM/SIGINT, shut down cleanly.
import { pino } from 'pino';
import { Daemon } from './daemon.js';
import { DaemonUsageError, parseDaemonArgs } from './options.js';
import { defaultPlugins } from './plugins.js';

const SHUTDOWN_TIMEOUT_MS = 15_000;

export async function runDaemon(argv: readonly string[]): Promise<number> {
  let options;
  try {
    options = await parseDaemonArgs(argv);
  } catch (err) {
    if (err instanceof DaemonUsageError) {
      process.stderr.write(`shoald: ${err.message}\nSee 'shoald --help'.\n`);
      return 1;
    }
    throw err;
  }
  if (options === undefined) return 0; // --help
  const logger = pino({ level: options.logLevel, base: { pid: process.pid, host: options.hostname }, name: 'shoald' });
  const daemon = new Daemon(options, logger, defaultPlugins());
  try {
    await daemon.start();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    logger.fatal({ err }, 'shoald failed to start');
    logger.flush();
    process.stderr.write(`shoald: ${message}\n`);
    return 1;
  }
  return new Promise<number>((resolve) => {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (signalled) {
        logger.warn({ signal }, 'second signal: exiting now');
        logger.flush();
        resolve(1);
        return;
      }
      signalled = true;
      logger.info({ signal }, 'shutting down');
      const timer = setTimeout(() => {
        logger.error({ timeoutMs: SHUTDOWN_TIMEOUT_MS }, 'shutdown took too long: exiting');
        logger.flush();
        resolve(1);
      }, SHUTDOWN_TIMEOUT_MS);
      daemon.stop().then(
        () => {
          clearTimeout(timer);
          logger.info('stopped');
          logger.flush();
          resolve(0);
        },
        (err: unknown) => {
          clearTimeout(timer);
          logger.error({ err }, 'shutdown failed');
          logger.flush();
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
