import { z } from 'zod';
import type { PolicyLine } from './types.ts';

/**
 * Policy lines as the admin API, onboarding bundles and the command line
 * write them (one JSON format): named fields instead of
 * Casbin's positional values.
 */
export const ruleJsonSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('p'),
    /** Absent when the URL names the subject (a group's rules). */
    subject: z.string().min(1).max(300).optional(),
    domain: z.string().min(1).max(100),
    object: z.string().min(1).max(2000),
    action: z.string().min(1).max(300),
    effect: z.enum(['allow', 'deny']).default('allow'),
    scope: z.string().max(300).default(''),
  }).strict(),
  z.object({ type: z.literal('g'), member: z.string().min(1).max(300), group: z.string().min(1).max(300) }).strict(),
  z.object({ type: z.literal('g2'), method: z.string().min(1).max(20), operation: z.string().min(1).max(100), domain: z.string().min(1).max(100) }).strict(),
]);
export type RuleJson = z.infer<typeof ruleJsonSchema>;

/** A policy line from its JSON form; `subject` fills in a p rule without one. */
export function ruleFromJson(rule: RuleJson, subject?: string): PolicyLine {
  switch (rule.type) {
    case 'p': return { ptype: 'p', values: [rule.subject ?? subject ?? '', rule.domain, rule.object, rule.action, rule.effect, rule.scope] };
    case 'g': return { ptype: 'g', values: [rule.member, rule.group] };
    case 'g2': return { ptype: 'g2', values: [rule.method, rule.operation, rule.domain] };
  }
}

export function ruleToJson(line: PolicyLine): Record<string, string> {
  const v = line.values;
  switch (line.ptype) {
    case 'p': return { type: 'p', subject: v[0]!, domain: v[1]!, object: v[2]!, action: v[3]!, effect: v[4]!, scope: v[5] ?? '' };
    case 'g': return { type: 'g', member: v[0]!, group: v[1]! };
    case 'g2': return { type: 'g2', method: v[0]!, operation: v[1]!, domain: v[2]! };
  }
}
