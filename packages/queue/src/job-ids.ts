/**
 * Job ids. `~` never occurs in a dataset id (see `idProblem`), so ids cannot collide between datasets,
 * and BullMQ forbids `:` in custom ids.
 */
export function datasetJobId(datasetId: string, run: number): string {
  return `${datasetId}~r${run}`;
}

export function chunkJobId(datasetId: string, run: number, chunk: number): string {
  return `${datasetId}~r${run}~c${chunk}`;
}

export function parseJobId(jobId: string): { datasetId: string; run: number; chunk?: number } | undefined {
  const m = /^(.+)~r(\d+)(?:~c(\d+))?$/.exec(jobId);
  if (!m || m[1] === undefined || m[2] === undefined) return undefined;
  return { datasetId: m[1], run: Number(m[2]), ...(m[3] !== undefined ? { chunk: Number(m[3]) } : {}) };
}
