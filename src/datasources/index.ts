/**
 * Data sources: one-step onboarding of storage, compute, ML and sync&share
 * services (docs/datasources.md).
 */
export { DataSourceError, DATA_SOURCE_ERROR_STATUS, type DataSourceErrorCode, type FieldProblem } from './errors.ts';
export { DATA_SOURCE_CHANNEL, DATA_SOURCE_VERSION_KEY } from './sync.ts';
export type { IntrospectionCredentials } from './introspection-client.ts';
export { createMetadataEndpoint } from './metadata-endpoint.ts';
export { onboardingBundle, type OnboardingBundle } from './onboarding.ts';
export { audienceMetadataUrl, gatewayResource, PROTECTED_RESOURCE_WELL_KNOWN, protectedResourceMetadata, protectedResourceMetadataUrl } from '../gateway/protected-resource.ts';
export type { ChangeResult } from './changes.ts';
export { readStoredDataSources, type ChangeContext, type StoredDataSource } from './records.ts';
export { DataSources, type DataSourcesDeps } from './registry.ts';
export type { DataSourceView, EffectiveDataSource } from './views.ts';
export { DEFAULT_OPERATIONS, effectiveScopes, parseDataSource, policyLinesOf, resourceServerOf, serviceOf } from './spec.ts';
