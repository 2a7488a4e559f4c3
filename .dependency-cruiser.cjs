/**
 * The layering rules `npm run depcheck` holds the code to (part of `npm test`): the domain core
 * knows no cloud, no framework and no caller of its own, and `shared/` has no import cycles.
 * Type-only imports count: a type import of an adapter is a dependency on it all the same.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'A cycle ties its modules into one: none can be read, tested or moved without the others.',
      from: { path: '^(shared|packages/[^/]+/src)/' },
      to: { circular: true },
    },
    {
      name: 'core-knows-no-aws',
      severity: 'error',
      comment: 'shared/core is the domain: AWS SDK, Powertools, middy and Lambda types belong to the adapters.',
      from: { path: '^shared/core/' },
      to: {
        path: ['^node_modules/(@aws-sdk|@aws-lambda-powertools|@middy|@types/aws-lambda|aws-lambda)/'],
      },
    },
    {
      name: 'core-knows-no-outer-layer',
      severity: 'error',
      comment: 'shared/core is called by the adapters, handlers, local runtime, construct, stack; never the reverse.',
      from: { path: '^shared/core/' },
      to: { path: '^(shared/(aws|http|lambda)|functions|local|infra|packages)/' },
    },
    {
      name: 'openapi-generator-stays-out-of-bundles',
      severity: 'error',
      comment:
        'zod-openapi (a dev dependency) writes docs/openapi.json at build time (`npm run openapi`); the API serves that file, so nothing a function bundles may reach the generator.',
      from: { path: '^(shared|functions|local|infra)/', pathNot: '^functions/api/openapi\\.ts$' },
      to: { path: ['^node_modules/zod-openapi/', '^functions/api/openapi\\.ts$'] },
    },
    {
      name: 'core-resolves-everything',
      severity: 'error',
      comment: 'An import the cruiser cannot resolve cannot be checked against the rules above.',
      from: { path: '^shared/core/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.d.ts'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
  },
};
