import { createFedgate } from './app.ts';
import { ConfigError, loadConfig } from './config/index.ts';
import { demoBanner } from './config/banner.ts';

/** Starts fedgate: configuration, then the listener, then signals. */
async function main(): Promise<void> {
  let config;
  try {
    config = await loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`fedgate: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  let fedgate;
  try {
    fedgate = await createFedgate(config);
  } catch (err) {
    // Bad policy files are configuration too: same message form, same exit code.
    if (err instanceof ConfigError) {
      process.stderr.write(`fedgate: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (config.demo) process.stdout.write(demoBanner(config));
  await fedgate.listen();

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    fedgate.logger.info({ signal }, 'shutting down: finishing in-flight requests');
    fedgate.close().then(
      () => { fedgate.logger.flush(); process.exit(0); },
      (err: Error) => { fedgate.logger.error({ err: { message: err.message } }, 'shutdown failed'); process.exit(1); },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: Error) => {
  process.stderr.write(`fedgate: failed to start: ${err.message}\n`);
  process.exit(1);
});
