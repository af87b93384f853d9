// What a TCP connect attempt saw, shared by the prober and the scenarios reading its probes.
//   open: connected; refused: reset by the peer (the SYN reached it); timeout: no answer (dropped).

/** open: connected; dropped: no answer; reached: the SYN got to the container (open or refused). */
export type Want = 'open' | 'dropped' | 'reached';

export function matches(outcome: string, want: Want): boolean {
  switch (want) {
    case 'open':
      return outcome === 'open';
    case 'dropped':
      return outcome === 'timeout';
    case 'reached':
      return outcome === 'open' || outcome === 'refused';
  }
}
