import { metricsFormat, type MetricsOptions } from './exposition-sink.js';
import { meshCore } from '../mesh-core.js';
import { renderModels } from './prometheus.js';

/**
 * The exposition of several meshes in one valid text: each family declared once, holding every mesh's series
 * (told apart by their `mesh` label), where concatenating `mesh.metrics()` texts would declare each family
 * twice ("second HELP line for metric name") or, in OpenMetrics, end at the first `# EOF`. The meshes need
 * distinct `name`s (at most one may be unnamed); a `TypeError` says which clash. `format` as for `mesh.metrics()`.
 * @example
 * const edge = createMesh({ registry, name: 'edge' });
 * const internal = createMesh({ registry, name: 'internal' });
 * res.setHeader('content-type', PROMETHEUS_CONTENT_TYPE).end(renderMeshMetrics([edge, internal]));
 */
export function renderMeshMetrics(meshes: readonly object[], options?: MetricsOptions): string {
  const at = 'renderMeshMetrics(meshes, options)';
  if (!Array.isArray(meshes)) throw new TypeError(`${at}: meshes must be an array of meshes made by createMesh()`);
  const format = metricsFormat(options, at);
  const sources = meshes.map((mesh) => meshCore(mesh, at));
  checkDistinct(sources.map((s) => s.name), at);
  return renderModels(sources.map((s) => s.metricsModel()), format);
}

/** Refuses two meshes that would write the same series: the same name, or both unnamed (`at` names the caller). */
export function checkDistinct(names: readonly (string | undefined)[], at: string): void {
  const seen = new Set<string | undefined>();
  for (const name of names) {
    if (seen.has(name)) {
      throw new TypeError(
        name === undefined
          ? `${at}: two unnamed meshes would write the same series; give each a distinct name (createMesh({ name }))`
          : `${at}: two meshes are named ${JSON.stringify(name)}; give each a distinct name`,
      );
    }
    seen.add(name);
  }
}
