export {
  sha256Hex,
  baseId,
  secretDigest,
  runHashInput,
  runId,
  sexpOfManifest,
  copyHashInput,
  copyId,
  CopyError,
  type SecretInput,
  type RunInput,
  type Manifest,
  type CopyInput,
} from './step-id.js';
export { generateManifest, ManifestError } from './manifest.js';
export { planSpec, type Plan, type PlanStep, type PlanOptions, type StepKind } from './plan.js';
export { comparePlans, type StepComparison, type StepStatus } from './plan-diff.js';
export { applyContextOp, copyDestination, initialContext, isAbsolute, runInputOf, type BuildContext, type TargetOs } from './build-context.js';
