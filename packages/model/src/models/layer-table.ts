// Spec resolution over any model's layer table: canonical names and aliases, request order, repeats refused.
// No tfjs here.
import { ErrorCode, ValidationError } from '@layertap/contracts';
import type { ModelLayer, ResolvedLayer } from './descriptor';

/** Specs that a table does not hold but that deserve a pointed answer (a folded conv: hook its BatchNorm). */
export type SpecAdvice = (spec: string) => string | undefined;

/** Spec lookup over a table (canonical names and aliases), with messages that list the valid specs. */
export class LayerTable<L extends ModelLayer> {
  private readonly bySpec: Map<string, L>;

  constructor(
    readonly title: string,
    readonly layers: readonly L[],
    private readonly describe: () => string,
    private readonly advice: SpecAdvice = () => undefined,
  ) {
    this.bySpec = new Map(layers.flatMap((layer) => [layer.name, ...layer.aliases].map((spec) => [spec, layer] as const)));
  }

  /** Every accepted spec, in forward order. */
  specs(): string[] {
    return [...this.bySpec.keys()];
  }

  /** The table row of any spec; throws `unknown_layer` listing what is valid. */
  layer(spec: string): L {
    const trimmed = spec.trim();
    const layer = this.bySpec.get(trimmed);
    if (layer) return layer;
    const advice = this.advice(trimmed);
    const lower = trimmed.toLowerCase();
    const hint = advice ? ` (${advice})` : lower !== trimmed && this.bySpec.has(lower) ? ` (did you mean ${JSON.stringify(lower)}?)` : '';
    throw new ValidationError(ErrorCode.UnknownLayer, `unknown ${this.title} layer ${JSON.stringify(trimmed)}${hint}. Valid layers: ${this.describe()}`);
  }

  /** Resolves specs in request order; the same spec twice is refused (it would name one output folder twice). */
  resolve(specs: readonly string[]): ResolvedLayer[] {
    const seen = new Set<string>();
    return specs.map((spec) => {
      const trimmed = spec.trim();
      const layer = this.layer(trimmed);
      if (seen.has(trimmed)) throw new ValidationError(ErrorCode.InvalidRequest, `layer ${JSON.stringify(trimmed)} is requested twice`);
      seen.add(trimmed);
      return { spec: trimmed, canonical: layer.name, order: layer.order };
    });
  }

  /** The rows of a build's requested outputs, each tensor once; throws for none or a repeat. */
  outputs(specs: readonly string[]): L[] {
    if (specs.length === 0) throw new ValidationError(ErrorCode.InvalidRequest, 'no output layers given');
    const layers = specs.map((spec) => this.layer(spec));
    const names = layers.map((layer) => layer.name);
    const repeated = names.find((name, i) => names.indexOf(name) !== i);
    if (repeated) throw new ValidationError(ErrorCode.InvalidRequest, `output layer ${repeated} is given twice`);
    return layers;
  }

  /** The row furthest along the forward pass among `specs`. */
  deepest(specs: readonly string[]): L {
    const layers = this.outputs([...new Set(specs.map((spec) => this.layer(spec).name))]);
    return layers.reduce((a, b) => (b.order > a.order ? b : a));
  }
}
