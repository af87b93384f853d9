import { cpuPerChange, eventId, spread } from '../../../bench/held';
import { requestedNames } from '../../../bench/main';

describe('scale bench bookkeeping', () => {
  const put = eventId('put', '/sluice/v1/endpoints/host-0001/a');
  const del = eventId('delete', '/sluice/v1/endpoints/host-0001/b');

  it('times a write to all hosts by the last one to hold it, and counts a write some host never held', () => {
    const writes = new Map([
      [put, 1000],
      [del, 2000],
    ]);
    const held = new Map([
      [put, [1010, 1300, 1020]],
      [del, [2005, 2007]],
      // Not written in the window: not counted.
      [eventId('put', '/sluice/v1/endpoints/host-0002/c'), [5000, 5000, 5000]],
    ]);
    expect(spread(writes, held, 3)).toEqual({ toAll: [300], each: [10, 300, 20, 5, 7], missed: 1 });
    expect(spread(writes, held, 2).toAll).toEqual([300, 7]);
  });

  it('charges each change only the CPU above what the process used at rest', () => {
    // At rest 1 ms of CPU per 100 ms; 1,000 ms of churn would cost 10 ms of it anyway.
    expect(cpuPerChange({ at: 0, cpuMs: 50 }, { at: 500, cpuMs: 55 }, { at: 1500, cpuMs: 265 }, 20)).toBe(10);
    expect(() => cpuPerChange({ at: 0, cpuMs: 0 }, { at: 1, cpuMs: 0 }, { at: 2, cpuMs: 0 }, 0)).toThrow('0 changes');
  });
});

describe('bench arguments', () => {
  it('takes scenario names after --only or as plain arguments, and all scenarios without either', () => {
    expect(requestedNames(['--only', 'scale,memory'])).toEqual(['scale', 'memory']);
    expect(requestedNames(['scale'])).toEqual(['scale']);
    expect(requestedNames(['scale', 'memory'])).toEqual(['scale', 'memory']);
    expect(requestedNames([])).toBeUndefined();
    expect(requestedNames(['--only'])).toEqual([]);
  });
});
