export * from './layers';
export * from './weight-specs';
export * from './random-weights';
export * from './adaptive-avg-pool';
export * from './backend';
export * from './vgg16';
export * from './extractor';
export type { LogFn } from './log';
export * from './weights';
