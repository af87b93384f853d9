import { PolicyError } from '../../../src/errors';
import { matches, parseSelector } from '../../../src/policy-document/selector';

const canonical = (text: string): string => parseSelector(text).toString();

describe('parseSelector', () => {
  it.each([
    ["role == 'web'", "role == 'web'"],
    ['role=="web"', "role == 'web'"],
    ["role != 'web'", "role != 'web'"],
    ["tier in {'b','a', 'b'}", "tier in {'a', 'b'}"],
    ["tier not in {'x'}", "tier not in {'x'}"],
    ['tier in {}', 'tier in {}'],
    ['has(com.example/tier)', 'has(com.example/tier)'],
    ['!has(a-b_c.d)', '!has(a-b_c.d)'],
    ['all()', 'all()'],
    ['  all ( )  ', 'all()'],
    ['((has(x)))', 'has(x)'],
    [`name == "it's"`, `name == "it's"`],
    ["name == 'say \"hi\"'", "name == 'say \"hi\"'"],
    // Keywords are label keys where a key is expected.
    ["has == 'yes' && in == 'x' && not != 'y' && all == 'z'", "all == 'z' && has == 'yes' && in == 'x' && not != 'y'"],
  ])('parses %s', (text, expected) => {
    expect(canonical(text)).toBe(expected);
  });

  it('binds ! tighter than && tighter than ||', () => {
    expect(parseSelector("a == '1' || b == '2' && !has(c)").expr).toEqual({
      op: '||',
      // Operands sorted by canonical text: "!has(c) && …" before "a == '1'".
      exprs: [
        { op: '&&', exprs: [{ op: '!', expr: { op: 'has', key: 'c' } }, { op: '==', key: 'b', value: '2' }] },
        { op: '==', key: 'a', value: '1' },
      ],
    });
    expect(canonical("(a == '1' || b == '2') && c == '3'")).toBe("(a == '1' || b == '2') && c == '3'");
    expect(canonical("!a == '1' && b == '2'")).toBe("a != '1' && b == '2'");
    expect(canonical("!(a == '1' && b == '2')")).toBe("!(a == '1' && b == '2')");
  });

  it('gives equal selectors the same canonical text', () => {
    const forms = [
      "role == 'web' && (tier in {'b', 'a'} || has(x))",
      "(has(x) || tier in {'a','b'}) && role == \"web\"",
      "!!(role == 'web') && ((has(x)) || tier in {'a', 'b', 'a'}) && role == 'web'",
    ];
    expect(new Set(forms.map(canonical))).toEqual(new Set(["(has(x) || tier in {'a', 'b'}) && role == 'web'"]));
    expect(canonical("!(a in {'x'})")).toBe("a not in {'x'}");
    expect(canonical("!(a != 'x')")).toBe("a == 'x'");
  });

  it('reads its canonical text back to the same selector', () => {
    for (const text of ["!(a == '1' || !has(b)) && c not in {'x', \"y'\"}", "a == '1' || b == '2' && c == '3'", '!all()']) {
      const once = parseSelector(text);
      expect(parseSelector(once.toString())).toEqual(once);
    }
  });

  it.each([
    ['role == ', 9, 'a quoted string'],
    ['role == web', 9, 'a quoted string, found web'],
    ["role = 'web'", 6, "'==', '!=', 'in' or 'not in', found ="],
    ['role', 5, "'==', '!=', 'in' or 'not in'"],
    ["role == 'web' &", 15, "'&&', '||' or the end of the selector, found &"],
    ["role == 'web' role", 15, "'&&', '||' or the end of the selector, found role"],
    ["(role == 'web'", 15, "'&&', '||' or ')'"],
    ["role == 'web')", 14, "'&&', '||' or the end of the selector, found )"],
    ["role == 'web", 13, "a closing ' for the string opened at column 9"],
    ['', 1, "a label key, has(, all(), '!' or '('"],
    ['&& a', 1, "a label key, has(, all(), '!' or '(', found &&"],
    ["a not {'x'}", 7, "'in', found {"],
    ["a in 'x'", 6, "'{', found 'x'"],
    ["a in {'x' 'y'}", 11, "',' or '}', found 'y'"],
    ["a in {'x',}", 11, "a quoted string, found }"],
    ['a in {x}', 7, "a quoted string or '}', found x"],
    ['has()', 5, 'a label key, found )'],
    ['has(a', 6, "')'"],
    ['all(x)', 5, "')', found x"],
    ["a == 'x' || #", 13, "a label key, has(, all(), '!' or '(', found #"],
  ])('refuses %j at column %d', (text, column, expected) => {
    expect(() => parseSelector(text)).toThrow(PolicyError);
    expect(() => parseSelector(text)).toThrow(`selector ${JSON.stringify(text)}: at column ${column}: expected ${expected}`);
  });
});

describe('matches', () => {
  const labels = { role: 'web', tier: 'front', 'com.example/zone': 'a' };

  it.each([
    ['all()', {}, true],
    ["role == 'web'", labels, true],
    ["role == 'db'", labels, false],
    ["role == 'web'", {}, false],
    ["role != 'db'", labels, true],
    ["role != 'web'", labels, false],
    ["role != 'web'", {}, true],
    ["tier in {'back', 'front'}", labels, true],
    ["tier in {'back'}", labels, false],
    ["tier in {'back'}", {}, false],
    ['tier in {}', labels, false],
    ["tier not in {'back'}", labels, true],
    ["tier not in {'front'}", labels, false],
    ["tier not in {'front'}", {}, true],
    ['has(com.example/zone)', labels, true],
    ['has(zone)', labels, false],
    ['!has(zone)', labels, true],
    ["has(role) && role == ''", { role: '' }, true],
    ['has(constructor)', {}, false],
    ["constructor != 'x'", {}, true],
    ["role == 'web' && tier == 'back'", labels, false],
    ["role == 'web' || tier == 'back'", labels, true],
    ["!(role == 'web' && tier == 'front')", labels, false],
    ["role == 'db' || tier == 'front' && has(com.example/zone)", labels, true],
    ["(role == 'db' || tier == 'front') && has(zone)", labels, false],
  ])('%s on %j is %s', (text, given, expected) => {
    expect(matches(parseSelector(text), given)).toBe(expected);
  });
});
