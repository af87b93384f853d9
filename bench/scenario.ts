// What a scenario gets to work with, and what it is.
import type { Lab } from '../test/helpers/lab';
import type { LabKey } from './labs';
import type { Row } from './report';

export interface Context {
  /** The lab, brought up on first use (the sluice network exists on every host). */
  lab(key: LabKey): Promise<Lab>;
  /** Adds a result row at once, so rows measured before a failure are kept. */
  add(row: Row): void;
  /** A directory under /tmp, which the hosts' mount namespaces see too (policy files). */
  tmp: string;
  log(message: string): void;
}

export interface Scenario {
  name: string;
  /** Labs it uses: each is torn down after the last scenario of the run that needs it. */
  labs: readonly LabKey[];
  /** Leaves the labs as it found them (its containers, policies and fake records removed). */
  run(ctx: Context): Promise<void>;
}
