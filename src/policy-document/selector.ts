/**
 * Label selectors in Calico's syntax: a tokenizer and a recursive-descent
 * parser into a small expression tree, its evaluation against an endpoint's
 * labels, and a canonical text form. The canonical text names the selector's
 * ipset, so selectors written differently but meaning the same (spacing,
 * quoting, operand order, duplicate operands, set order, double negation,
 * redundant parentheses) share one set.
 *
 * Grammar, `!` binding tighter than `&&` tighter than `||`:
 *
 *   or      := and ('||' and)*
 *   and     := unary ('&&' unary)*
 *   unary   := '!' unary | primary
 *   primary := '(' or ')' | 'all' '(' ')' | 'has' '(' KEY ')'
 *            | KEY ('==' | '!=') STRING | KEY ['not'] 'in' '{' [STRING (',' STRING)*] '}'
 *
 * One file: tokenizer, parser, normal form, renderer and evaluator are this
 * one grammar and its expression tree seen from each side; a change to either
 * touches them all.
 */
import { PolicyError } from '../errors';
import type { Labels } from '../model';

export type SelectorExpr =
  | { readonly op: 'all' }
  | { readonly op: 'has'; readonly key: string }
  | { readonly op: '==' | '!='; readonly key: string; readonly value: string }
  | { readonly op: 'in' | 'not in'; readonly key: string; readonly values: readonly string[] }
  | { readonly op: '!'; readonly expr: SelectorExpr }
  | { readonly op: '&&' | '||'; readonly exprs: readonly SelectorExpr[] };

/** A parsed selector, always in canonical form. Build one with parseSelector(). */
export class Selector {
  readonly expr: SelectorExpr;
  private readonly text: string;

  constructor(expr: SelectorExpr) {
    this.expr = normalize(expr);
    this.text = render(this.expr);
  }

  /** Canonical text, e.g. `has(tier) && role in {'db', 'web'}`; parses back to an equal selector. */
  toString(): string {
    return this.text;
  }
}

/**
 * Every selector becomes ipsets and is evaluated against every endpoint on
 * every apply: 4 KiB holds a few hundred terms, far beyond any real selector,
 * and keeps an apply within milliseconds (a 40,000-term one took seconds).
 */
export const MAX_SELECTOR_LENGTH = 4096;
/** Nested '(' and '!': real selectors need two or three; the bound keeps every recursion here shallow. */
export const MAX_SELECTOR_DEPTH = 32;

/** Parses `text`; throws PolicyError naming the 1-based column and what was expected there. */
export function parseSelector(text: string): Selector {
  // Checked before tokenizing: the length bounds the work, and the canonical form must fit too, as it is what is stored.
  checkLength(text.length, '');
  const selector = new Selector(new Parser(text).parseAll());
  checkLength(selector.toString().length, ' in canonical form');
  return selector;
}

function checkLength(length: number, form: string): void {
  if (length > MAX_SELECTOR_LENGTH) {
    throw new PolicyError(`selector of ${length} characters${form}: over the limit of ${MAX_SELECTOR_LENGTH} characters`);
  }
}

/**
 * True if `labels` satisfy the selector. As in Calico, `k != 'v'` and
 * `k not in {…}` hold when the endpoint has no label `k`.
 */
export function matches(selector: Selector, labels: Labels): boolean {
  return evaluate(selector.expr, labels);
}

function evaluate(expr: SelectorExpr, labels: Labels): boolean {
  switch (expr.op) {
    case 'all':
      return true;
    case 'has':
      return Object.hasOwn(labels, expr.key);
    case '==':
      return labelOf(labels, expr.key) === expr.value;
    case '!=':
      return labelOf(labels, expr.key) !== expr.value;
    case 'in': {
      const value = labelOf(labels, expr.key);
      return value !== undefined && expr.values.includes(value);
    }
    case 'not in': {
      const value = labelOf(labels, expr.key);
      return value === undefined || !expr.values.includes(value);
    }
    case '!':
      return !evaluate(expr.expr, labels);
    case '&&':
      return expr.exprs.every((e) => evaluate(e, labels));
    case '||':
      return expr.exprs.some((e) => evaluate(e, labels));
  }
}

/** Own labels only: a label key like `constructor` must not find Object.prototype. */
function labelOf(labels: Labels, key: string): string | undefined {
  return Object.hasOwn(labels, key) ? labels[key] : undefined;
}

// ---- canonical form ----

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function normalize(expr: SelectorExpr): SelectorExpr {
  switch (expr.op) {
    case 'in':
    case 'not in':
      return { op: expr.op, key: expr.key, values: [...new Set(expr.values)].sort(compareText) };
    case '!': {
      const inner = normalize(expr.expr);
      // Negated comparisons have operators of their own with the same meaning (absent key included).
      switch (inner.op) {
        case '!':
          return inner.expr;
        case '==':
          return { ...inner, op: '!=' };
        case '!=':
          return { ...inner, op: '==' };
        case 'in':
          return { ...inner, op: 'not in' };
        case 'not in':
          return { ...inner, op: 'in' };
        default:
          return { op: '!', expr: inner };
      }
    }
    case '&&':
    case '||': {
      const operands = new Map<string, SelectorExpr>();
      const add = (e: SelectorExpr): void => {
        const n = normalize(e);
        if (n.op === expr.op) n.exprs.forEach(add);
        else operands.set(render(n), n);
      };
      expr.exprs.forEach(add);
      // && and || are commutative here (no side effects), so sorting operands is safe.
      const sorted = [...operands.entries()].sort(([a], [b]) => compareText(a, b)).map(([, e]) => e);
      const [only, ...others] = sorted;
      return only !== undefined && others.length === 0 ? only : { op: expr.op, exprs: sorted };
    }
    default:
      return expr;
  }
}

/** Calico string literals have no escapes: single quotes unless the value holds one. */
function quote(value: string): string {
  return value.includes("'") ? `"${value}"` : `'${value}'`;
}

function render(expr: SelectorExpr): string {
  switch (expr.op) {
    case 'all':
      return 'all()';
    case 'has':
      return `has(${expr.key})`;
    case '==':
    case '!=':
      return `${expr.key} ${expr.op} ${quote(expr.value)}`;
    case 'in':
    case 'not in':
      return `${expr.key} ${expr.op} {${expr.values.map(quote).join(', ')}}`;
    case '!':
      // After normalize() the operand is has(), all(), && or ||.
      return expr.expr.op === 'has' || expr.expr.op === 'all' ? `!${render(expr.expr)}` : `!(${render(expr.expr)})`;
    case '&&':
      return expr.exprs.map((e) => (e.op === '||' ? `(${render(e)})` : render(e))).join(' && ');
    case '||':
      return expr.exprs.map(render).join(' || ');
  }
}

// ---- tokenizer ----

type TokenKind = 'key' | 'string' | '==' | '!=' | '!' | '&&' | '||' | '(' | ')' | '{' | '}' | ',' | 'bad' | 'end';

interface Token {
  kind: TokenKind;
  /** Source text; for strings, the value without quotes. */
  text: string;
  /** 0-based offset into the selector text. */
  at: number;
}

const KEY_CHAR = /[A-Za-z0-9_./-]/;
const PUNCTUATION: readonly TokenKind[] = ['==', '!=', '&&', '||', '!', '(', ')', '{', '}', ','];

function tokenize(source: string, fail: (at: number, expected: string) => never): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source.charAt(i);
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === "'" || c === '"') {
      const close = source.indexOf(c, i + 1);
      if (close < 0) fail(source.length, `a closing ${c} for the string opened at column ${i + 1}`);
      tokens.push({ kind: 'string', text: source.slice(i + 1, close), at: i });
      i = close + 1;
      continue;
    }
    const punctuation = PUNCTUATION.find((p) => source.startsWith(p, i));
    if (punctuation !== undefined) {
      tokens.push({ kind: punctuation, text: punctuation, at: i });
      i += punctuation.length;
      continue;
    }
    if (KEY_CHAR.test(c)) {
      const start = i;
      while (i < source.length && KEY_CHAR.test(source.charAt(i))) i++;
      tokens.push({ kind: 'key', text: source.slice(start, i), at: start });
      continue;
    }
    // Left for the parser, which knows what it expected instead.
    tokens.push({ kind: 'bad', text: c, at: i });
    i++;
  }
  return tokens;
}

// ---- parser ----

class Parser {
  private readonly tokens: Token[];
  private readonly end: Token;
  private pos = 0;
  /** Open '(' and '!' around the current token: counted so no input can recurse deeper than MAX_SELECTOR_DEPTH. */
  private depth = 0;

  constructor(private readonly source: string) {
    this.tokens = tokenize(source, (at, expected) => this.fail(at, expected));
    this.end = { kind: 'end', text: '', at: source.length };
  }

  parseAll(): SelectorExpr {
    const expr = this.parseOr();
    this.expect('end', "'&&', '||' or the end of the selector");
    return expr;
  }

  private parseOr(): SelectorExpr {
    // A one-operand || (or &&) is collapsed by normalize().
    const exprs = [this.parseAnd()];
    while (this.accept('||')) exprs.push(this.parseAnd());
    return { op: '||', exprs };
  }

  private parseAnd(): SelectorExpr {
    const exprs = [this.parseUnary()];
    while (this.accept('&&')) exprs.push(this.parseUnary());
    return { op: '&&', exprs };
  }

  private parseUnary(): SelectorExpr {
    const bang = this.peek();
    if (this.accept('!')) return this.nested(bang, () => ({ op: '!', expr: this.parseUnary() }));
    return this.parsePrimary();
  }

  private parsePrimary(): SelectorExpr {
    const open = this.peek();
    if (this.accept('(')) {
      return this.nested(open, () => {
        const expr = this.parseOr();
        this.expect(')', "'&&', '||' or ')'");
        return expr;
      });
    }
    const key = this.expect('key', "a label key, has(, all(), '!' or '('").text;
    // `has` and `all` are functions only when called; otherwise they are label keys like any other.
    if (key === 'all' && this.accept('(')) {
      this.expect(')', "')'");
      return { op: 'all' };
    }
    if (key === 'has' && this.accept('(')) {
      const hasKey = this.expect('key', 'a label key').text;
      this.expect(')', "')'");
      return { op: 'has', key: hasKey };
    }
    const operator = this.peek();
    if (operator.kind === '==' || operator.kind === '!=') {
      this.pos++;
      return { op: operator.kind, key, value: this.expect('string', 'a quoted string').text };
    }
    if (operator.kind === 'key' && operator.text === 'in') {
      this.pos++;
      return { op: 'in', key, values: this.parseSet() };
    }
    if (operator.kind === 'key' && operator.text === 'not') {
      this.pos++;
      const inToken = this.peek();
      if (inToken.kind !== 'key' || inToken.text !== 'in') this.failAt(inToken, "'in'");
      this.pos++;
      return { op: 'not in', key, values: this.parseSet() };
    }
    return this.failAt(operator, "'==', '!=', 'in' or 'not in'");
  }

  private parseSet(): string[] {
    this.expect('{', "'{'");
    const values: string[] = [];
    if (this.accept('}')) return values;
    for (;;) {
      values.push(this.expect('string', values.length === 0 ? "a quoted string or '}'" : 'a quoted string').text);
      if (this.accept('}')) return values;
      this.expect(',', "',' or '}'");
    }
  }

  private nested(at: Token, parse: () => SelectorExpr): SelectorExpr {
    if (++this.depth > MAX_SELECTOR_DEPTH) {
      throw new PolicyError(`selector: at column ${at.at + 1}: nested deeper than the limit of ${MAX_SELECTOR_DEPTH} levels of '(' and '!'`);
    }
    try {
      return parse();
    } finally {
      this.depth--;
    }
  }

  private peek(): Token {
    return this.tokens[this.pos] ?? this.end;
  }

  private accept(kind: TokenKind): boolean {
    if (this.peek().kind !== kind) return false;
    this.pos++;
    return true;
  }

  private expect(kind: TokenKind, expected: string): Token {
    const token = this.peek();
    if (token.kind !== kind) this.failAt(token, expected);
    this.pos++;
    return token;
  }

  private failAt(token: Token, expected: string): never {
    const found = token.kind === 'end' ? '' : `, found ${this.source.slice(token.at, token.at + rawLength(token))}`;
    return this.fail(token.at, expected + found);
  }

  private fail(at: number, message: string): never {
    throw new PolicyError(`selector ${JSON.stringify(this.source)}: at column ${at + 1}: expected ${message}`);
  }
}

/** Length of the token in the source: strings carry their two quotes. */
function rawLength(token: Token): number {
  return token.kind === 'string' ? token.text.length + 2 : token.text.length;
}
