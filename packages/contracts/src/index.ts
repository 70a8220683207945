export * from './errors';
export * from './ids';
export * from './queue-contract';
export * from './engines';
export * from './limits';
export * from './redact-uri';
export * from './exit-codes';
export * from './file-uri';
