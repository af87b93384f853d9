// Test tiers by the privilege they need: unit (nothing), contract (etcd),
// integration (root: netns, iptables), e2e (root: dockerd + etcd in namespaces).
const tier = (name, extra = {}) => ({
  displayName: name,
  preset: 'ts-jest',
  testEnvironment: 'node',
  testMatch: [`<rootDir>/test/${name}/**/*.test.ts`],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  // plugin/build.sh puts a copy of the package (package.json, node_modules) in plugin/build.
  modulePathIgnorePatterns: ['<rootDir>/plugin/build/'],
  ...extra,
});

module.exports = {
  projects: [
    tier('unit'),
    tier('contract'),
    tier('integration'),
    tier('e2e'),
  ],
};
