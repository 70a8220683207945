export * from './env-config';
export * from './logger';
export { isHelpOrVersion, usageErrorLine, type ParserError } from './usage-error';
