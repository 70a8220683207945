// What the inference process writes to its stdout and stderr outside the worker's logger: native libraries
// (Dawn, the Vulkan loader, ONNX Runtime) write to fd 1 and 2 directly, and the process's own JSON warning
// lines (json-warnings.ts). The host reads both streams line by line and logs each line through the worker's
// logger, so that a worker's output stays one JSON object per line.
import type { Logger } from '@layertap/config';

/** Who most likely wrote a raw line: ONNX Runtime, Dawn (and the GPU stack under it), or anything else. */
export type NativeSource = 'dawn' | 'onnxruntime' | 'native';

/** Longest line logged as is; native libraries can print whole shaders. */
export const MAX_NATIVE_LINE = 4_000;

// ONNX Runtime's default logger: `2024-05-01 10:00:00.000 onnxruntime[123:0x..] [W:onnxruntime:, file.cc:12 Fn] ...`
const ONNXRUNTIME = /onnxruntime/i;
// Dawn's own lines, Tint (its shader compiler) and the Vulkan/Mesa stack it loads.
const DAWN = /dawn|\btint\b|webgpu|vulkan|\bvk[A-Z_]|lavapipe|\bmesa\b|_icd_|loader message|wgsl/i;

export function nativeSource(line: string): NativeSource {
  if (ONNXRUNTIME.test(line)) return 'onnxruntime';
  if (DAWN.test(line)) return 'dawn';
  return 'native';
}

/** A raw line without terminal colours, carriage returns and trailing blanks, cut at MAX_NATIVE_LINE. */
export function cleanLine(line: string): string {
  // eslint-disable-next-line no-control-regex
  const text = line.replace(/\u001b\[[0-9;]*[A-Za-z]/g, '').replace(/\r/g, '').trimEnd();
  return text.length > MAX_NATIVE_LINE ? `${text.slice(0, MAX_NATIVE_LINE)}… (${text.length} characters)` : text;
}

const PINO_LEVELS: Record<number, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/** A line that is already a JSON log line (the process's own warnings), or undefined. */
function jsonLogLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return value && typeof value === 'object' && !Array.isArray(value) && typeof (value as { msg?: unknown }).msg === 'string' ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Logs one line of the inference process's output: a JSON log line keeps its level, message and fields;
 * anything else is a warning with its likely `source` (`dawn`, `onnxruntime`, `native`) and `stream`.
 */
export function logNativeLine(log: Logger, raw: string, stream: 'stdout' | 'stderr', inferencePid: number | undefined): void {
  const line = cleanLine(raw);
  if (!line) return;
  const json = jsonLogLine(line);
  if (json) {
    const { level, time: _time, pid: _pid, hostname: _hostname, name: _name, msg, ...fields } = json;
    const method = PINO_LEVELS[typeof level === 'number' ? level : 40] ?? 'warn';
    log[method]({ ...fields, inferencePid }, msg as string);
    return;
  }
  log.warn({ source: nativeSource(line), stream, inferencePid }, line);
}
