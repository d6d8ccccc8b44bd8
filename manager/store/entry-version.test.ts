// A committed entry this build cannot read. A malformed one (bad bytes) is skipped by every manager
// alike; one written by a newer Shoal (an op, kind or format this build does not know) must stop
// this manager instead: skipping it would leave its store behind the others' for good.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { encodeBatch, ORIGIN_BYTES } from './actions.js';
import { MemoryStore, StoreEntryVersionError, type StoreObject } from './index.js';

const silent = pino({ level: 'silent' });

function configEntry(name: string): Uint8Array {
  const object = { ID: `id-${name}`, Spec: { Name: name, Data: 'aGk=' } } as unknown as StoreObject;
  return encodeBatch({ origin: new Uint8Array(ORIGIN_BYTES), seq: 1, actions: [{ op: 'create', kind: 'config', object }] });
}

/** Where the first action's head byte (op << 4 | kind code) is: after format, origin, seq and count (one byte each here). */
const HEAD_AT = 1 + ORIGIN_BYTES + 1 + 1;

describe('entries this build cannot read', () => {
  it('applies a known entry, skips a malformed one, and stops at one with an unknown op', () => {
    const store = new MemoryStore({ logger: silent });
    store.applyEntry({ index: 1, data: configEntry('a') });
    expect(store.find('config').map((c) => c.Spec.Name)).toEqual(['a']);

    const malformed = configEntry('b').slice(0, 20); // cut short: every manager skips it alike
    store.applyEntry({ index: 2, data: malformed });
    expect(store.version).toBe(2);

    const newer = configEntry('c');
    const at = HEAD_AT;
    newer[at] = (0xe << 4) | (newer[at]! & 0x0f); // op 14: not one this build knows
    expect(() => store.applyEntry({ index: 3, data: newer })).toThrow(StoreEntryVersionError);
    expect(() => store.applyEntry({ index: 3, data: newer })).toThrow(/entry 3 was written by a newer Shoal \(unknown store op 14/);
    // Not applied and not skipped: the store is still at the entry before it.
    expect(store.version).toBe(2);
    expect(store.find('config').map((c) => c.Spec.Name)).toEqual(['a']);
    // A build that reads it would apply it at that same index.
    store.applyEntry({ index: 3, data: configEntry('c') });
    expect(store.find('config').map((c) => c.Spec.Name).sort()).toEqual(['a', 'c']);
  });

  it('stops at an unknown batch format and an unknown object kind too', () => {
    const store = new MemoryStore({ logger: silent });
    const format = configEntry('a');
    format[0] = 99;
    expect(() => store.applyEntry({ index: 1, data: format })).toThrow(/unknown batch format 99/);
    const kind = configEntry('a');
    const at = HEAD_AT;
    kind[at] = (kind[at]! & 0xf0) | 0x0f;
    expect(() => store.applyEntry({ index: 1, data: kind })).toThrow(/unknown object kind code 15/);
    expect(store.version).toBe(0);
  });
});
