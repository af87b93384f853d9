// Result rows and the markdown table they end up in.

export interface Row {
  scenario: string;
  figure: string;
  target: string;
  measured: string;
  verdict: 'pass' | 'FAIL' | 'info' | 'error';
}

export type Unit = 'µs' | 'ms' | 'MB' | 'ratio' | 'Gbit/s' | 'count';

export interface Target {
  /** The measured value must be at most (<=) or at least (>=) the limit. */
  op: '<=' | '>=';
  limit: number;
}

export function format(value: number, unit: Unit): string {
  switch (unit) {
    case 'µs':
      return `${value.toFixed(1)} µs`;
    case 'ms':
      return `${value.toFixed(1)} ms`;
    case 'MB':
      return `${value.toFixed(1)} MB`;
    case 'ratio':
      return value.toFixed(3);
    case 'Gbit/s':
      return `${value.toFixed(2)} Gbit/s`;
    case 'count':
      return String(value);
  }
}

/** A measured figure, checked against its target when it has one. */
export function figure(scenario: string, name: string, value: number, unit: Unit, target?: Target): Row {
  const measured = format(value, unit);
  if (target === undefined) return { scenario, figure: name, target: '-', measured, verdict: 'info' };
  const ok = target.op === '<=' ? value <= target.limit : value >= target.limit;
  return {
    scenario,
    figure: name,
    target: `${target.op === '<=' ? '≤' : '≥'} ${format(target.limit, unit)}`,
    measured,
    verdict: ok ? 'pass' : 'FAIL',
  };
}

export function errorRow(scenario: string, err: unknown): Row {
  const message = (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').trim();
  return { scenario, figure: '-', target: '-', measured: `error: ${message.slice(0, 300)}`, verdict: 'error' };
}

export function markdownTable(rows: readonly Row[]): string {
  const cell = (text: string) => text.replace(/\|/g, '\\|');
  return [
    '| scenario | figure | target | measured | verdict |',
    '| --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${[r.scenario, r.figure, r.target, r.measured, r.verdict].map(cell).join(' | ')} |`),
  ].join('\n');
}
