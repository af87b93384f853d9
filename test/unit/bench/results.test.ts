import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { updateResults } from '../../../bench/main';

const ORDER = ['docker-run', 'plugin-time', 'memory'];
const COMMITTED = readFileSync(path.resolve(__dirname, '../../../bench/results.md'), 'utf8');

describe('bench/results.md: one section per scenario', () => {
  it('replaces only the sections of the scenarios that ran, keeping the preamble and the others', () => {
    const before = '# Results\n\nhand-written note\n\n## docker-run\n\nold run\n\n## plugin-time\n\nold times\n\n## memory\n\nold memory\n';
    expect(updateResults(before, new Map([['plugin-time', 'new times\n']]), ORDER)).toBe(
      '# Results\n\nhand-written note\n\n## docker-run\n\nold run\n\n## plugin-time\n\nnew times\n\n## memory\n\nold memory\n',
    );
  });

  it('puts a section that was not there yet in run order, and starts a file from nothing', () => {
    const before = '# Results\n\n## memory\n\nold memory\n';
    expect(updateResults(before, new Map([['docker-run', 'runs']]), ORDER)).toBe('# Results\n\n## docker-run\n\nruns\n\n## memory\n\nold memory\n');
    expect(updateResults(undefined, new Map([['memory', 'mb']]), ORDER)).toMatch(/^# Sluice benchmark results\n[^]*\n\n## memory\n\nmb\n$/);
  });

  it('regenerates the committed file: rewriting every section with what it holds changes nothing', () => {
    const sections = new Map(
      COMMITTED.split(/^(?=## )/m)
        .slice(1)
        .map((part) => [/^## (\S+)/.exec(part)![1]!, part.replace(/^## \S+\n\n/, '')]),
    );
    expect(sections.size).toBe(COMMITTED.match(/^## /gm)?.length);
    expect(updateResults(COMMITTED, sections, [...sections.keys()])).toBe(COMMITTED);
    expect(updateResults(COMMITTED, new Map(), [])).toBe(COMMITTED);
  });
});
