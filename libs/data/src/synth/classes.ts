/** The incident classes of the city-safety benchmark, grouped by operational domain. */
export const DOMAINS = {
  energy: ['transformer_overheat', 'line_fault'],
  residential: ['intrusion', 'fire_smoke', 'water_leak'],
  urban: ['traffic_collision', 'crowd_surge', 'streetlight_outage'],
} as const;

export type Domain = keyof typeof DOMAINS;
export type IncidentClass = (typeof DOMAINS)[Domain][number];

/** Class list in the benchmark's fixed order (label index = position). */
export const INCIDENT_CLASSES: readonly IncidentClass[] = [...DOMAINS.energy, ...DOMAINS.residential, ...DOMAINS.urban];

/** The domain a class belongs to. */
export function domainOf(c: IncidentClass): Domain {
  for (const [d, list] of Object.entries(DOMAINS) as [Domain, readonly string[]][]) if (list.includes(c)) return d;
  throw new RangeError(`unknown incident class ${c}`);
}
