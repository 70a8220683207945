/** Structured logging callback: a message and optional fields (wrap pino as `(msg, f) => log.info(f, msg)`). */
export type LogFn = (msg: string, fields?: object) => void;

/** Logs nothing: the default when no `log` option is given. */
export const silentLog: LogFn = () => undefined;
