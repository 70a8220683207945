// A download progress bar: one line on a terminal's stderr, redrawn in place; nothing when stderr is not a
// terminal (logs and pipes get the result lines, not hundreds of redraws).

export interface ProgressBar {
  update(received: number, total: number): void;
  /** Ends the line (when one was drawn). */
  done(): void;
}

const WIDTH = 30;
/** Redraws at most this often, and always at 100%. */
const REDRAW_MS = 100;

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** The bar's text for `received` of `total` bytes (`total` 0: unknown). */
export function progressLine(label: string, received: number, total: number): string {
  if (total <= 0) return `${label} ${megabytes(received)}`;
  const fraction = Math.min(1, received / total);
  const filled = Math.round(fraction * WIDTH);
  return `${label} [${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}% ${megabytes(received)} / ${megabytes(total)}`;
}

/** A bar on `stream` when it is a terminal; a silent one otherwise. */
export function createProgressBar(stream: NodeJS.WritableStream, label: string, now: () => number = Date.now): ProgressBar {
  if ((stream as { isTTY?: boolean }).isTTY !== true) return { update: () => undefined, done: () => undefined };
  let drawn = false;
  let last = -Infinity;
  return {
    update: (received, total) => {
      const t = now();
      if (t - last < REDRAW_MS && received < total) return;
      last = t;
      drawn = true;
      // \r back to the line's start, \x1b[K clears what a longer earlier line left.
      stream.write(`\r${progressLine(label, received, total)}\x1b[K`);
    },
    done: () => {
      if (drawn) stream.write('\n');
      drawn = false;
    },
  };
}
