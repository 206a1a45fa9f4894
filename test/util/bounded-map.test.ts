import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BoundedMap } from '../../src/util/bounded-map.ts';

describe('BoundedMap', () => {
  it('drops the oldest entry to make room for a new key, not for an update', () => {
    const map = new BoundedMap<string, number>(2);
    map.set('a', 1).set('b', 2);
    map.set('a', 10);
    assert.deepEqual([...map], [['a', 10], ['b', 2]], 'an update evicts nothing');
    map.set('c', 3);
    assert.deepEqual([...map], [['b', 2], ['c', 3]], 'the oldest key went');
  });

  it('keeps nothing with a limit of 0', () => {
    const map = new BoundedMap<string, number>(0);
    map.set('a', 1);
    assert.equal(map.size, 0);
  });
});
