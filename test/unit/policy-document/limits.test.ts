import { PolicyError } from '../../../src/errors';
import { POLICY_LIMITS, parsePolicies } from '../../../src/policy-document/policy';
import { MAX_SELECTOR_DEPTH, MAX_SELECTOR_LENGTH, parseSelector } from '../../../src/policy-document/selector';

/** A valid policy document with `selector` and the given extra YAML lines. */
function doc(selector: string, rest = 'ingress: []'): string {
  return `kind: NetworkPolicy\nname: p\nselector: ${JSON.stringify(selector)}\n${rest}\n`;
}

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return (err as Error).message;
  }
  throw new Error('expected a PolicyError');
}

describe('policy limits', () => {
  it('refuses the 40,000-term selector of issue 7 by its length, naming the limit', () => {
    const huge = Array.from({ length: 40_000 }, (_, i) => `tier${i} == 'web'`).join(' || ');
    expect(huge.length).toBeGreaterThan(800_000);
    expect(refusal(() => parseSelector(huge))).toMatch(`over the limit of ${MAX_SELECTOR_LENGTH} characters`);
    // As a policy file it is already over the file limit; a shorter one meets the selector's.
    expect(refusal(() => parsePolicies(doc(huge)))).toBe('policy text of 849 KiB: over the limit of 256 KiB per file: split it into several files');
    expect(refusal(() => parsePolicies(doc(huge.slice(0, 5000))))).toBe(
      'document 1 (name: p): selector: selector of 5000 characters: over the limit of 4096 characters',
    );
  });

  it('takes a selector just within the length limit, also when its canonical form is longer', () => {
    const terms = (n: number) => Array.from({ length: n }, (_, i) => `k${i}=='v'`).join('&&');
    const fits = terms(200);
    expect(fits.length).toBeLessThanOrEqual(MAX_SELECTOR_LENGTH);
    expect(parseSelector(fits).toString().length).toBeGreaterThan(fits.length);
    // Within the limit as written, but its canonical (stored) form is not: refused, or it could not be read back.
    const grows = terms(340);
    expect(grows.length).toBeLessThanOrEqual(MAX_SELECTOR_LENGTH);
    expect(refusal(() => parseSelector(grows))).toMatch(/characters in canonical form: over the limit/);
  });

  it('refuses selectors nested more than 1,000 deep with a clear error, not a stack overflow', () => {
    const parens = `${'('.repeat(1001)}a == 'b'${')'.repeat(1001)}`;
    const bangs = `${'!'.repeat(1001)}has(a)`;
    for (const selector of [parens, bangs]) {
      expect(refusal(() => parseSelector(selector))).toMatch(`nested deeper than the limit of ${MAX_SELECTOR_DEPTH} levels`);
      expect(refusal(() => parsePolicies(doc(selector)))).toMatch(/document 1 \(name: p\): selector: selector: at column 33: nested deeper/);
    }
  });

  it('takes nesting up to the depth limit', () => {
    const deepest = `${'('.repeat(MAX_SELECTOR_DEPTH)}a == 'b'${')'.repeat(MAX_SELECTOR_DEPTH)}`;
    expect(parseSelector(deepest).toString()).toBe("a == 'b'");
    expect(refusal(() => parseSelector(`(${deepest})`))).toMatch(/nested deeper/);
  });

  it('refuses a YAML alias bomb instead of expanding it', () => {
    const levels = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]'];
    for (let i = 1; i < 10; i++) {
      const prev = String.fromCharCode(96 + i);
      levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${prev}`).join(', ')}]`);
    }
    const bomb = `${levels.join('\n')}\nkind: NetworkPolicy\nname: p\nselector: all()\ningress: []\n`;
    expect(refusal(() => parsePolicies(bomb))).toBe(
      `document 1: YAML aliases expand to more than ${POLICY_LIMITS.aliasExpansions} nodes: refused (an alias bomb?)`,
    );
  });

  it('refuses deeply nested YAML before the parser recurses into it (5,000 levels killed the process)', () => {
    for (const text of [`${'['.repeat(5000)}${']'.repeat(5000)}`, `${'- '.repeat(5000)}x`, `x: ${'{a: '.repeat(3000)}1${'}'.repeat(3000)}`]) {
      expect(refusal(() => parsePolicies(text))).toBe(`policy text nests deeper than the limit of ${POLICY_LIMITS.yamlDepth} levels of YAML collections`);
    }
  });

  it('still takes a few aliases, as a real policy may reuse a rule', () => {
    const text = "kind: NetworkPolicy\nname: p\nselector: all()\ningress:\n  - &web {action: allow, protocol: tcp, ports: [80]}\negress:\n  - *web\n";
    expect(parsePolicies(text)[0]!.egress).toEqual([{ action: 'allow', protocol: 'tcp', ports: [80] }]);
  });

  it('refuses a 2 MB policy file before parsing it, and a policy over 64 KiB as stored', () => {
    const twoMb = doc('all()', `ingress: []\n# ${'x'.repeat(2 * 1024 * 1024)}`);
    expect(refusal(() => parsePolicies(twoMb))).toBe('policy text of 2049 KiB: over the limit of 256 KiB per file: split it into several files');
    const nets = Array.from({ length: 4000 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
    const big = doc('all()', `ingress:\n  - action: allow\n    fromNets: [${nets.join(',')}]`);
    expect(Buffer.byteLength(big)).toBeLessThan(POLICY_LIMITS.fileBytes);
    expect(refusal(() => parsePolicies(big))).toMatch(/^document 1 \(name: p\): \d+ KiB as stored: over the limit of 64 KiB per policy$/);
  });

  it('refuses more rules per direction and more ports per rule than the limits, and takes exactly the limits', () => {
    const rules = (n: number) => `ingress:\n${'  - action: allow\n'.repeat(n)}`;
    expect(parsePolicies(doc('all()', rules(POLICY_LIMITS.rulesPerDirection)))[0]!.ingress).toHaveLength(100);
    expect(refusal(() => parsePolicies(doc('all()', rules(101))))).toMatch(/ingress: 101 rules: over the limit of 100$/);
    const ports = (n: number) => `egress:\n  - action: allow\n    protocol: tcp\n    ports: [${Array.from({ length: n }, (_, i) => i + 1).join(',')}]`;
    expect(parsePolicies(doc('all()', ports(POLICY_LIMITS.portsPerRule)))[0]!.egress![0]!.ports).toHaveLength(64);
    expect(refusal(() => parsePolicies(doc('all()', ports(65))))).toMatch(/egress\[0\]\.ports: 65 ports: over the limit of 64$/);
  });
});
