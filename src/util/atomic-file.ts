/**
 * The one way fedgate writes a file that other replicas read (signing and
 * cookie keys, the SAML SP key and certificate, the mTLS server key):
 * through a fsync'd temporary file with the final mode, then published in
 * one step, so a reader never sees half a file.
 *
 * `exclusive`: publish with a hard link, which fails instead of replacing,
 * so that replicas starting together on an empty directory end up with one
 * file (the first); false is returned when `path` already existed. Without
 * it, rename replaces what is there.
 */
import { randomBytes } from 'node:crypto';
import { link, open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface AtomicWriteOptions {
  /** File mode (applied with chmod, so the umask does not narrow it). */
  mode: number;
  exclusive: boolean;
}

/** Error codes of volumes without hard links: first starts racing there fall back to last writer wins. */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'ENOSYS', 'EOPNOTSUPP']);

export async function writeFileAtomic(path: string, content: string, { mode, exclusive }: AtomicWriteOptions): Promise<boolean> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', mode);
  try {
    try {
      await handle.chmod(mode);
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (exclusive) {
      try {
        await link(tmp, path);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (code === 'EEXIST') return false;
        if (!NO_HARD_LINKS.has(code)) throw err;
        await rename(tmp, path);
      }
    } else {
      await rename(tmp, path);
    }
    await syncDir(path);
    return true;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** Makes the publication itself durable; best effort, since not every platform can open a directory. */
async function syncDir(path: string): Promise<void> {
  try {
    const handle = await open(dirname(path), 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Best effort.
  }
}
