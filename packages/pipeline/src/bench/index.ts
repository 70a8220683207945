export { ALONE_STAGES, DEFAULT_BENCH_OPTIONS, runBench, type AloneStage, type BenchEngine, type BenchOptions, type BenchReport, type BenchSettings } from './run-bench';
export { runWorkerBench, type WorkerBenchOptions, type WorkerBenchReport } from './worker-bench';
export { generateImages, type GenerateImagesOptions } from './images';
export { DEFAULT_PYTHON, PYTORCH_SCRIPT, type PytorchComparison, type PytorchPipelineComparison, type PytorchPipelineResult, type PytorchResult } from './pytorch';
export { kernelShare, treeCpu, treeCpuMs, type CpuMs } from './process-cpu';
