export { defaultDatasetId, planLayers, planRun, prepareSubmission, sameSettings, skippedWarning, type RunPlan, type Submission, type SubmitOptions } from './plan';
export { IMAGE_EXTENSIONS, MAX_LINE_BYTES, normalizeUri, resolveSource, type ResolveSourceOptions } from './source';
export { PROBE_TIMEOUT_MS, probeSource, withDeadline } from './probe';
export { folderName, loadOnnxShapeProbe, planOnnxModel, type OnnxShapeProbe, type PlannedOnnxModel } from './onnx-model';
