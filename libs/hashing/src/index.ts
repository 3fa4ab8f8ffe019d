export {
  sha256Hex,
  baseId,
  secretDigest,
  runHashInput,
  runId,
  sexpOfManifest,
  copyHashInput,
  copyStepKeyOf,
  manifestMachine,
  copyId,
  stepKey,
  CopyError,
  type SecretInput,
  type RunInput,
  type Manifest,
  type CopyInput,
  type StepKey,
} from './step-id.js';
export { generateManifest, ManifestError, type FileDigestCache } from './manifest.js';
export { ContextHashCache } from './context-hash-cache.js';
export { planSpec, type Plan, type PlanStep, type PlanOptions, type StepKind } from './plan.js';
export { comparePlans, type StepComparison, type StepStatus } from './plan-diff.js';
export { applyContextOp, copyDestination, copyStepKey, initialContext, isAbsolute, runStepKey, type BuildContext, type TargetOs } from './build-context.js';
