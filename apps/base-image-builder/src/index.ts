// The matrix and its plan, for `cairn images plan` (no service code: the CLI bundles this).
export {
  BOOTSTRAP_FROM,
  loadMatrix,
  MATRIX_FILE,
  MatrixError,
  parseMatrix,
  splitName,
  type Bootstrap,
  type Matrix,
  type MatrixImage,
} from './matrix/matrix.js';
export { inputsDigest, probeCommand, probePackages, ProbeError, specDigests, type LiveInputs } from './matrix/inputs-digest.js';
export { matrixPlan, renderPlanTable, type PlanRow } from './matrix/matrix-plan.js';
