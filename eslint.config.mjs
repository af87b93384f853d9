import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Which part of src/ may import which (the table in the README's "How it works"): dependencies
 * point one way, and anything not listed is an error. A part is a folder or a top-level module;
 * "part/module" allows that one module of a part only.
 */
const MAY_IMPORT = {
  errors: [],
  model: [],
  net: [],
  util: [],
  protocol: ['errors', 'model', 'net'],
  'policy-document': ['errors', 'model', 'net'],
  routing: ['errors', 'model', 'net'],
  firewall: ['errors', 'model', 'net'],
  encryption: ['errors', 'model', 'net', 'routing'],
  labels: ['errors', 'model', 'net'],
  dns: ['errors', 'model', 'net', 'util'],
  dataplane: ['errors', 'model', 'net', 'util', 'routing', 'encryption', 'firewall'],
  // firewall/names: the veth-name check of endpoint records.
  store: ['errors', 'model', 'net', 'util', 'policy-document', 'encryption', 'firewall/names'],
  ipam: ['errors', 'model', 'net', 'util', 'protocol', 'store'],
  policy: ['errors', 'model', 'net', 'util', 'policy-document', 'firewall'],
  driver: ['errors', 'model', 'net', 'util', 'protocol', 'firewall', 'store', 'ipam', 'dataplane', 'labels'],
  api: ['errors', 'model', 'net', 'util', 'protocol', 'metrics', 'store/keys'],
  // agent/view: what the agent knows, exported as gauges.
  metrics: ['errors', 'model', 'net', 'util', 'store', 'dataplane', 'agent/view'],
  config: ['errors', 'model', 'net', 'util', 'encryption', 'dns', 'policy', 'store'],
  agent: ['errors', 'model', 'net', 'util', 'protocol', 'policy-document', 'routing', 'encryption', 'firewall', 'labels', 'dns', 'dataplane', 'store', 'ipam', 'policy', 'driver', 'metrics', 'config'],
  cli: ['errors', 'model', 'net', 'util', 'policy-document', 'store', 'ipam', 'policy', 'agent', 'config', 'main'],
  main: ['errors', 'model', 'net', 'util', 'protocol', 'policy-document', 'routing', 'encryption', 'firewall', 'labels', 'dns', 'dataplane', 'store', 'ipam', 'policy', 'driver', 'api', 'metrics', 'agent', 'config'],
};
/** Parts that are one file at the top of src/; the rest are folders. */
const MODULE_PARTS = new Set(['errors', 'model', 'config', 'main']);
/** Pure parts: no kernel, store adapter or process, whatever else they may import. */
const PURE = new Set(['errors', 'model', 'net', 'protocol', 'policy-document', 'routing', 'encryption', 'firewall', 'ipam', 'policy']);
const IMPURE_IMPORTS = ['**/linux/**', '**/etcd-store*', '**/open-store', 'child_process', 'node:child_process', 'node:dns', 'node:dns/promises', 'node:fs', 'node:fs/promises', 'node:net', 'node:dgram'];

function layerRules() {
  return Object.entries(MAY_IMPORT).map(([part, allowed]) => {
    const allowedParts = new Set(allowed.map((a) => a.split('/')[0]));
    const forbidden = Object.keys(MAY_IMPORT)
      .filter((other) => other !== part && !allowedParts.has(other))
      .map((other) => (MODULE_PARTS.has(other) ? `**/${other}` : `**/${other}/**`));
    // "part/module": the part is forbidden but for that module.
    const single = allowed.filter((a) => a.includes('/'));
    forbidden.push(...single.map((a) => `**/${a.split('/')[0]}/**`), ...single.map((a) => `!**/${a}`));
    const patterns = [{ group: forbidden, message: `${part} may import ${allowed.length > 0 ? `only ${allowed.join(', ')}` : 'nothing of Sluice'} (README, How it works)` }];
    if (PURE.has(part)) patterns.push({ group: IMPURE_IMPORTS, message: `${part} is pure: no kernel, store adapter or process` });
    return {
      files: [MODULE_PARTS.has(part) ? `src/${part}.ts` : `src/${part}/**`],
      rules: { 'no-restricted-imports': ['error', { patterns }] },
    };
  });
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', ignoreRestSiblings: true }],
      '@typescript-eslint/only-throw-error': 'error',
      eqeqeq: ['error', 'smart'],
    },
  },
  ...layerRules(),
  {
    files: ['test/**'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
);
