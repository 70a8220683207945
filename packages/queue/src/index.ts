export * from './connection';
export * from './dataset-store';
export * from './job-ids';
export * from './queues';
export * from './status';
export * from './queue-metrics';
export * from './orphans';
