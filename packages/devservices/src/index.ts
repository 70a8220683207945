export { DevServices, type DevServicesOptions } from './dev-services';
export { DevServiceError, DevServiceErrorCode } from './errors';
export { findFreePort } from './free-port';
export { RedisServer, type RedisServerOptions, type RedisTlsOptions } from './redis-server';
export { encodeCommand, parseReply, RespError, sendCommands, type RespValue } from './resp';
export { S3Server, type S3ServerOptions, type S3Settings } from './s3-server';
export { createTestCertificates, type TestCertificates } from './tls-certificates';
