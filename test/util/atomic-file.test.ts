import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeFileAtomic } from '../../src/util/atomic-file.ts';

describe('writeFileAtomic', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'fedgate-atomic-')); });
  after(() => rm(dir, { recursive: true, force: true }));

  it('lets exactly one of many racing exclusive writers publish, and leaves no temporary file', async () => {
    const path = join(dir, 'keys.json');
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => writeFileAtomic(path, `writer ${i}\n`, { mode: 0o600, exclusive: true })));
    assert.equal(results.filter(Boolean).length, 1);
    const winner = results.indexOf(true);
    assert.equal(await readFile(path, 'utf8'), `writer ${winner}\n`);
    assert.deepEqual(await readdir(dir), ['keys.json']);
  });

  it('gives the file its mode whatever the umask, and replaces when not exclusive', async () => {
    const path = join(dir, 'cert.pem');
    const umask = process.umask(0o077);
    try {
      assert.equal(await writeFileAtomic(path, 'one', { mode: 0o644, exclusive: true }), true);
    } finally {
      process.umask(umask);
    }
    assert.equal((await stat(path)).mode & 0o777, 0o644);
    assert.equal(await writeFileAtomic(path, 'two', { mode: 0o600, exclusive: false }), true);
    assert.equal(await readFile(path, 'utf8'), 'two');
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal(await writeFileAtomic(path, 'three', { mode: 0o600, exclusive: true }), false);
    assert.equal(await readFile(path, 'utf8'), 'two');
  });
});
