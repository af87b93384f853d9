/**
 * Policy counters from the kernel's counts of Sluice's own rules, told apart
 * by the comments the compiler (policy/policy-chains.ts, host-chains.ts) puts
 * on them: `policy NAME DIRECTION[I]` on a policy rule (target MARK: allow,
 * DROP: deny) and `sluice: default deny DIRECTION (selected by policy)`. A rule
 * split into several (more ports than one multiport match takes) is summed.
 */
import type { RuleCounter } from '../dataplane/dataplane';

export type Direction = 'ingress' | 'egress';

export interface PolicyRulePackets {
  policy: string;
  direction: Direction;
  /** The rule's index in the policy's list for the direction. */
  rule: number;
  action: 'allow' | 'deny';
  packets: number;
}

export interface PolicyPackets {
  rules: PolicyRulePackets[];
  defaultDeny: Record<Direction, number>;
}

const POLICY_RULE = /^policy (\S+) (ingress|egress)\[(\d+)\]$/;
const DEFAULT_DENY = /^sluice: default deny (ingress|egress) \(selected by policy\)$/;

export function policyPackets(counters: readonly RuleCounter[]): PolicyPackets {
  const rules = new Map<string, PolicyRulePackets>();
  const defaultDeny: Record<Direction, number> = { ingress: 0, egress: 0 };
  for (const counter of counters) {
    const deny = DEFAULT_DENY.exec(counter.comment);
    if (deny !== null) {
      defaultDeny[deny[1] as Direction] += counter.packets;
      continue;
    }
    const [, policy, direction, index] = POLICY_RULE.exec(counter.comment) ?? [];
    // The rule's "allowed" RETURN counts the same packets as its MARK: only the deciding rule counts.
    const action = counter.target === 'DROP' ? 'deny' : counter.target === 'MARK' ? 'allow' : undefined;
    if (policy === undefined || direction === undefined || index === undefined || action === undefined) continue;
    const key = `${policy} ${direction} ${index}`;
    const found = rules.get(key);
    if (found) found.packets += counter.packets;
    else rules.set(key, { policy, direction: direction as Direction, rule: Number(index), action, packets: counter.packets });
  }
  return { rules: [...rules.values()], defaultDeny };
}
