import { describe, expect, it } from 'vitest';
import {
  ConstraintSyntaxError,
  nodeMatches,
  parseConstraint,
  parseConstraints,
  parseSpreadDescriptor,
  PreferenceSyntaxError,
  SchedulerError,
  validatePlacement,
} from './index.js';
import { node } from './testing/builders.js';

function matches(constraint: string, n = node('n1')): boolean {
  return nodeMatches(parseConstraints([constraint]), n);
}

describe('parseConstraints: what the control API accepts', () => {
  it('reads key, operator and value, trimming spaces around them', () => {
    expect(parseConstraint(' node.labels.zone == a ')).toMatchObject({
      text: 'node.labels.zone==a',
      field: { kind: 'node.labels', label: 'zone' },
      operator: '==',
      value: 'a',
    });
    expect(parseConstraint('node.role!=manager')).toMatchObject({ field: { kind: 'node.role' }, operator: '!=' });
    expect(parseConstraint('ENGINE.LABELS.Disk==ssd').field).toEqual({ kind: 'engine.labels', label: 'Disk' });
    expect(parseConstraints(['node.id==abc', 'node.hostname!=h1', 'node.platform.os==linux', 'node.platform.arch==x86_64']).map((c) => c.field.kind)).toEqual([
      'node.id',
      'node.hostname',
      'node.platform.os',
      'node.platform.arch',
    ]);
  });

  it.each([
    ['node.labels.zone=a', 'expected one operator from ==, !='],
    ['node.labels.zone', 'expected one operator'],
    ['==a', 'the key before the operator is empty'],
    ['node.labels.zone==', 'the value after the operator is empty'],
    ['node.labels.zone==a==b', "the value 'a==b' contains an operator character"],
    ['node.labels.zone==a!=b', 'contains an operator character'],
    ['node.labels.==a', "the label name after 'node.labels.' is empty"],
    ['node.labels.my zone==a', "the label name 'my zone' contains spaces"],
    ['node.zone==a', "unknown key 'node.zone': use node.id, node.hostname, node.role"],
    ['node.role==boss', "node.role is 'manager' or 'worker', not 'boss'"],
    ['node.ip==10.0.0.300', "'10.0.0.300' is neither an IP address nor a subnet"],
    ['node.ip==10.0.0.0/33', 'is neither an IP address nor a subnet'],
  ])('refuses %j with a message saying what is wrong', (raw, problem) => {
    let caught: unknown;
    try {
      parseConstraints(['node.role==worker', raw]);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConstraintSyntaxError);
    const err = caught as ConstraintSyntaxError;
    expect(err.code).toBe('INVALID_CONSTRAINT');
    expect(err.constraint).toBe(raw);
    expect(err.message).toContain(`invalid placement constraint '${raw}'`);
    expect(err.message).toContain(problem);
  });
});

describe('constraint matching', () => {
  it('compares values without regard to case, label names with it', () => {
    const n = node('n1', { labels: { zone: 'EU-West' } });
    expect(matches('node.labels.zone==eu-west', n)).toBe(true);
    expect(matches('node.labels.ZONE==eu-west', n)).toBe(false);
    expect(matches('NODE.LABELS.zone==EU-WEST', n)).toBe(true);
  });

  it('reads a missing label as empty: == fails, != holds', () => {
    const n = node('n1', { labels: {} });
    expect(matches('node.labels.zone==a', n)).toBe(false);
    expect(matches('node.labels.zone!=a', n)).toBe(true);
    expect(matches('engine.labels.disk==ssd', n)).toBe(false);
    expect(matches('engine.labels.disk!=ssd', n)).toBe(true);
  });

  it('matches id, hostname, role, os and engine labels', () => {
    const n = node('abc', { hostname: 'web-1', role: 'manager', engineLabels: { disk: 'ssd' }, platform: { OS: 'linux', Architecture: 'aarch64' } });
    expect(matches('node.id==abc', n)).toBe(true);
    expect(matches('node.id!=abc', n)).toBe(false);
    expect(matches('node.hostname==web-1', n)).toBe(true);
    expect(matches('node.role==manager', n)).toBe(true);
    expect(matches('node.role!=manager', n)).toBe(false);
    expect(matches('node.platform.os==linux', n)).toBe(true);
    expect(matches('node.platform.os==windows', n)).toBe(false);
    expect(matches('engine.labels.disk==ssd', n)).toBe(true);
  });

  it('treats x86_64/amd64 and aarch64/arm64 as one architecture', () => {
    const intel = node('n1', { platform: { OS: 'linux', Architecture: 'x86_64' } });
    const arm = node('n2', { platform: { OS: 'linux', Architecture: 'aarch64' } });
    expect(matches('node.platform.arch==x86_64', intel)).toBe(true);
    expect(matches('node.platform.arch==amd64', intel)).toBe(true);
    expect(matches('node.platform.arch==arm64', arm)).toBe(true);
    expect(matches('node.platform.arch!=amd64', arm)).toBe(true);
    expect(matches('node.platform.arch==amd64', arm)).toBe(false);
  });

  it('matches node.ip against an address or a subnet', () => {
    const n = node('n1', { addr: '10.1.2.3' });
    expect(matches('node.ip==10.1.2.3', n)).toBe(true);
    expect(matches('node.ip==10.1.0.0/16', n)).toBe(true);
    expect(matches('node.ip!=10.1.0.0/16', n)).toBe(false);
    expect(matches('node.ip==10.2.0.0/16', n)).toBe(false);
    expect(matches('node.ip==10.1.0.0/16', node('n2'))).toBe(false);
  });
});

describe('validatePlacement and spread descriptors', () => {
  it('accepts a full, valid placement', () => {
    expect(() =>
      validatePlacement({
        Resources: { Reservations: { NanoCPUs: 1e9, MemoryBytes: 1, GenericResources: [{ DiscreteResourceSpec: { Kind: 'gpu', Value: 1 } }] } },
        Placement: {
          Constraints: ['node.labels.zone==a'],
          Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.zone' } }, { Spread: { SpreadDescriptor: 'engine.labels.rack' } }],
          MaxReplicas: 2,
        },
      }),
    ).not.toThrow();
  });

  it('refuses a spread over anything but a label', () => {
    expect(parseSpreadDescriptor('Node.Labels.zone')).toEqual({ source: 'node.labels', label: 'zone' });
    expect(() => parseSpreadDescriptor('node.hostname')).toThrow(PreferenceSyntaxError);
    expect(() => validatePlacement({ Placement: { Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.' } }] } })).toThrow(
      "invalid placement preference 'node.labels.': spread over node.labels.<label> or engine.labels.<label>",
    );
  });

  it('refuses negative or fractional limits and named reservations', () => {
    expect(() => validatePlacement({ Placement: { MaxReplicas: -1 } })).toThrow(SchedulerError);
    expect(() => validatePlacement({ Placement: { MaxReplicas: 1.5 } })).toThrow('Placement.MaxReplicas must be a whole number');
    expect(() => validatePlacement({ Resources: { Reservations: { MemoryBytes: -5 } } })).toThrow('Resources.Reservations.MemoryBytes must be ≥ 0');
    expect(() =>
      validatePlacement({ Resources: { Reservations: { GenericResources: [{ NamedResourceSpec: { Kind: 'gpu', Value: 'GPU-1' } }] } } }),
    ).toThrow('reserve a count (gpu=1), not a named unit');
    expect(() => validatePlacement({ Placement: { Constraints: ['zone=a'] } })).toThrow(ConstraintSyntaxError);
  });
});
