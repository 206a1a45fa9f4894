import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What a finished oidc-agent command printed. */
export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A running command whose output can be waited on while it runs (oidc-gen waits for the user). */
export interface RunningCommand {
  /** Resolves with the first match of `pattern` in stdout or stderr. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Resolves when the command exits. */
  done: Promise<CommandResult>;
  child: ChildProcess;
}

/** Output beyond this is dropped (oidc-gen prints QR codes; a prompt loop must not fill memory). */
const OUTPUT_LIMIT = 256 * 1024;

/**
 * The real oidc-agent (Debian's oidc-agent-cli) in a throw-away home: its
 * own HOME, OIDC_CONFIG_DIR and socket, an encryption password from the
 * environment (no keyring, no prompt), stopped by its pid at the end.
 */
export class OidcAgent {
  readonly home: string;
  readonly env: Record<string, string>;
  readonly #pid: number;
  readonly #running = new Set<ChildProcess>();

  private constructor(home: string, env: Record<string, string>, pid: number) {
    this.home = home;
    this.env = env;
    this.#pid = pid;
  }

  static async start(): Promise<OidcAgent> {
    const home = await mkdtemp(join(tmpdir(), 'fedgate-oidc-agent-'));
    const base: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      TMPDIR: home,
      OIDC_CONFIG_DIR: join(home, 'oidc-agent'),
      OIDC_ENCRYPTION_PW: 'test-encryption-password',
      // No desktop: no browser is opened, no keyring is asked.
      DISPLAY: '',
      DBUS_SESSION_BUS_ADDRESS: 'disabled:',
    };
    const socket = join(home, 'agent.sock');
    const started = await runCommand('oidc-agent', ['--json', '--no-autoload', '--socket-path', socket], base).done;
    if (started.code !== 0) throw new Error(`oidc-agent did not start: ${started.stderr}${started.stdout}`);
    const { socket: sock, dpid } = JSON.parse(started.stdout.slice(started.stdout.indexOf('{'))) as { socket: string; dpid: number };
    return new OidcAgent(home, { ...base, OIDC_SOCK: sock, OIDCD_PID: String(dpid) }, dpid);
  }

  /** Starts an oidc-agent tool (oidc-gen, oidc-add, oidc-token) against this agent. */
  run(command: 'oidc-gen' | 'oidc-add' | 'oidc-token', args: string[]): RunningCommand {
    const running = runCommand(command, args, this.env);
    this.#running.add(running.child);
    running.child.once('close', () => this.#running.delete(running.child));
    return running;
  }

  /** Stops the commands still running (an oidc-gen waiting for a user who never came), then the agent (by its pid), and removes its home. */
  async stop(): Promise<void> {
    for (const child of this.#running) child.kill('SIGTERM');
    try {
      process.kill(this.#pid, 'SIGTERM');
    } catch {
      // already gone
    }
    await rm(this.home, { recursive: true, force: true });
  }
}

function runCommand(command: string, args: string[], env: Record<string, string>): RunningCommand {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters: Array<() => void> = [];
  const notify = () => { for (const w of waiters.splice(0)) w(); };
  child.stdout!.on('data', (chunk: Buffer) => {
    if (stdout.length < OUTPUT_LIMIT) stdout += chunk.toString('utf8');
    notify();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    if (stderr.length < OUTPUT_LIMIT) stderr += chunk.toString('utf8');
    notify();
  });
  const done = new Promise<CommandResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      notify();
      resolve({ code, stdout, stderr });
    });
  });
  let exited = false;
  void done.then(() => { exited = true; }, () => { exited = true; });
  const waitFor = async (pattern: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // eslint-disable-next-line no-control-regex
      const text = `${stdout}\n${stderr}`.replace(/\u001b\[[0-9;]*m/g, '');
      const match = pattern.exec(text);
      if (match) return match;
      if (exited) throw new Error(`${command} exited without printing ${pattern}: ${text.slice(0, 2000)}`);
      if (Date.now() > deadline) {
        child.kill('SIGTERM');
        throw new Error(`${command} did not print ${pattern} in time: ${text.slice(0, 2000)}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 250);
        waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  };
  return { waitFor, done, child };
}
