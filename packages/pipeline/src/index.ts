export { BatchRunner, abortable, type BatchOutput, type BatchRunStats, type BatchRunnerOptions, type PreparedItem } from './batch-runner';
export { ChunkRunner, type ChunkAttempt, type ChunkRunnerOptions, type ChunkStore, type InferenceClient } from './chunk-runner';
export { ChunkLedger, emptyStageTimes, type StageTimes } from './chunk-ledger';
export { sampleNpy, storeBatch, storedSample, type StoreSettings, type StoredBatch } from './stored-batch';
export { createLimiter, type Limiter } from './limiter';
export { STAGES, type ChunkMetrics, type InferenceMemory, type Stage } from './metrics';
export { InferenceHost, type InferenceHostOptions } from './inference/host';
export { modelKey, wallClockMs, type ChildUsage, type InferResult, type ModelInfo, type ModelSpec } from './inference/protocol';
export { LayertapWorker, type LayertapWorkerOptions, type WorkerObserver, type WorkerSettings } from './worker-runtime';
