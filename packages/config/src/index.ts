export * from './env-config';
export * from './logger';
