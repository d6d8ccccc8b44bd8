// Placement constraints: `key==value` / `key!=value` over a node's identity, platform and labels.
// `parseConstraints` is what the control API calls to refuse a bad spec up front; the scheduler
// parses again (cheaply, once per distinct string) when it places tasks.
//
// Semantics, as swarm mode has them: keys' prefixes are case-insensitive, label names are
// case-sensitive, values compare case-insensitively; a missing label or field reads as "", so
// `==` fails on it and `!=` holds.

import { BlockList, isIP } from 'node:net';
import { ConstraintSyntaxError } from './errors.js';
import { normalizeArch } from './platform.js';
import type { SchedulerNode } from './types.js';

export type ConstraintOperator = '==' | '!=';

export type ConstraintField =
  | { readonly kind: 'node.id' }
  | { readonly kind: 'node.hostname' }
  | { readonly kind: 'node.role' }
  | { readonly kind: 'node.platform.os' }
  | { readonly kind: 'node.platform.arch' }
  | { readonly kind: 'node.ip' }
  | { readonly kind: 'node.labels'; readonly label: string }
  | { readonly kind: 'engine.labels'; readonly label: string };

export interface Constraint {
  /** The constraint as a person wrote it, without surrounding spaces: `node.labels.zone==a`. */
  readonly text: string;
  readonly field: ConstraintField;
  readonly operator: ConstraintOperator;
  /** The expected value as written (comparison ignores case). */
  readonly value: string;
}

const NODE_LABEL_PREFIX = 'node.labels.';
const ENGINE_LABEL_PREFIX = 'engine.labels.';
const FIXED_KEYS = ['node.id', 'node.hostname', 'node.role', 'node.platform.os', 'node.platform.arch', 'node.ip'] as const;
const KNOWN_KEYS_HINT =
  'use node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.ip, node.labels.<label> or engine.labels.<label>';
/** Characters that are, or may become, operators; never part of a key or a value. */
const OPERATOR_CHARS = /[=!<>~]/;
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
const LABEL_NAME = /^[^\s=!<>~]+$/;

/** Parses constraint strings; throws `ConstraintSyntaxError` naming the first bad one. */
export function parseConstraints(constraints: readonly string[]): Constraint[] {
  return constraints.map(parseConstraint);
}

export function parseConstraint(raw: string): Constraint {
  const eq = raw.indexOf('==');
  const ne = raw.indexOf('!=');
  if (eq < 0 && ne < 0) {
    throw new ConstraintSyntaxError(raw, 'expected one operator from ==, != (e.g. node.labels.zone==a)');
  }
  const at = eq < 0 ? ne : ne < 0 ? eq : Math.min(eq, ne);
  const operator: ConstraintOperator = at === eq ? '==' : '!=';
  const keyText = raw.slice(0, at).trim();
  const value = raw.slice(at + 2).trim();
  if (keyText === '') throw new ConstraintSyntaxError(raw, 'the key before the operator is empty');
  if (value === '') throw new ConstraintSyntaxError(raw, 'the value after the operator is empty');
  if (OPERATOR_CHARS.test(value)) {
    throw new ConstraintSyntaxError(raw, `the value '${value}' contains an operator character (= ! < > ~); one operator per constraint`);
  }
  if (CONTROL_CHARS.test(value)) throw new ConstraintSyntaxError(raw, 'the value contains control characters');
  const field = parseField(raw, keyText);
  checkValue(raw, field, value);
  return { text: `${keyText}${operator}${value}`, field, operator, value };
}

function parseField(raw: string, keyText: string): ConstraintField {
  const lower = keyText.toLowerCase();
  for (const prefix of [NODE_LABEL_PREFIX, ENGINE_LABEL_PREFIX] as const) {
    if (!lower.startsWith(prefix)) continue;
    const label = keyText.slice(prefix.length);
    if (label === '') throw new ConstraintSyntaxError(raw, `the label name after '${prefix}' is empty`);
    if (!LABEL_NAME.test(label)) throw new ConstraintSyntaxError(raw, `the label name '${label}' contains spaces or operator characters`);
    return prefix === NODE_LABEL_PREFIX ? { kind: 'node.labels', label } : { kind: 'engine.labels', label };
  }
  const fixed = FIXED_KEYS.find((k) => k === lower);
  if (fixed === undefined) throw new ConstraintSyntaxError(raw, `unknown key '${keyText}': ${KNOWN_KEYS_HINT}`);
  return { kind: fixed };
}

function checkValue(raw: string, field: ConstraintField, value: string): void {
  if (field.kind === 'node.role') {
    const role = value.toLowerCase();
    if (role !== 'manager' && role !== 'worker') {
      throw new ConstraintSyntaxError(raw, `node.role is 'manager' or 'worker', not '${value}'`);
    }
  }
  if (field.kind === 'node.ip' && parseIpOrSubnet(value) === undefined) {
    throw new ConstraintSyntaxError(raw, `'${value}' is neither an IP address nor a subnet in CIDR form (e.g. 10.0.0.0/24)`);
  }
}

interface IpMatcher {
  readonly list: BlockList;
}

function parseIpOrSubnet(value: string): IpMatcher | undefined {
  const slash = value.indexOf('/');
  const address = slash < 0 ? value : value.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return undefined;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  const list = new BlockList();
  if (slash < 0) {
    list.addAddress(address, type);
    return { list };
  }
  const prefixText = value.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^\d+$/.test(prefixText) || prefix > (family === 4 ? 32 : 128)) return undefined;
  list.addSubnet(address, prefix, type);
  return { list };
}

/** The node's value for a field; a missing field reads as "". */
export function nodeFieldValue(node: SchedulerNode, field: ConstraintField): string {
  switch (field.kind) {
    case 'node.id':
      return node.ID;
    case 'node.hostname':
      return node.Description?.Hostname ?? '';
    case 'node.role':
      return node.Spec.Role;
    case 'node.platform.os':
      return node.Description?.Platform?.OS ?? '';
    case 'node.platform.arch':
      return node.Description?.Platform?.Architecture ?? '';
    case 'node.ip':
      return node.Status.Addr ?? '';
    case 'node.labels':
      return node.Spec.Labels?.[field.label] ?? '';
    case 'engine.labels':
      return node.Description?.Engine?.Labels?.[field.label] ?? '';
  }
}

/** A constraint compiled into a predicate over nodes. */
export type NodePredicate = (node: SchedulerNode) => boolean;

export function compileConstraint(c: Constraint): NodePredicate {
  const wantEqual = c.operator === '==';
  if (c.field.kind === 'node.ip') {
    const matcher = parseIpOrSubnet(c.value);
    return (node) => {
      const addr = node.Status.Addr ?? '';
      const family = isIP(addr);
      const inside = matcher !== undefined && family !== 0 && matcher.list.check(addr, family === 4 ? 'ipv4' : 'ipv6');
      return inside === wantEqual;
    };
  }
  const field = c.field;
  if (field.kind === 'node.platform.arch') {
    // x86_64 and amd64 (aarch64 and arm64) name one architecture; accept either spelling.
    const expected = c.value.toLowerCase();
    const expectedNormal = normalizeArch(expected);
    return (node) => {
      const actual = nodeFieldValue(node, field).toLowerCase();
      return (actual === expected || (actual !== '' && normalizeArch(actual) === expectedNormal)) === wantEqual;
    };
  }
  const expected = c.value.toLowerCase();
  return (node) => (nodeFieldValue(node, field).toLowerCase() === expected) === wantEqual;
}

/** True when the node satisfies every constraint. */
export function nodeMatches(constraints: readonly Constraint[], node: SchedulerNode): boolean {
  return constraints.every((c) => compileConstraint(c)(node));
}
