import { DOMAINS, INCIDENT_CLASSES, type Domain, type IncidentClass } from './classes.js';
import { NEUTRAL_CAMERA, type CameraProfile } from './images.js';
import { NEUTRAL_SENSORS, type SensorProfile } from './sensors.js';
import type { Dialect } from './texts.js';

/** Faults injected into a company's training split; each is recorded in its faults.json. */
export interface FaultSpec {
  /** Share of training samples whose label is flipped to another class. */
  readonly labelNoise?: number;
  /** Samples copied byte for byte under a new id. */
  readonly exactDuplicates?: number;
  /** Samples re-captured: same scene, slightly different pixels, text spacing and sensor noise. */
  readonly nearDuplicates?: number;
  /** Samples with one dead (constant) sensor channel. */
  readonly flatLines?: number;
  /** Samples with one sensor channel amplified by a gain glitch. */
  readonly sensorOutliers?: number;
  /** Samples whose image file is truncated. */
  readonly corruptImages?: number;
}

/** Everything that makes one synthetic company differ from the others. */
export interface CompanySpec {
  readonly name: string;
  readonly description: string;
  readonly trainSize: number;
  readonly testSize: number;
  /** Relative frequency of each class (label skew); missing classes get weight 0. */
  readonly classWeights: Readonly<Partial<Record<IncidentClass, number>>>;
  /** Modalities the company collects at all. */
  readonly modalities: { readonly image: boolean; readonly text: boolean; readonly sensor: boolean };
  /** Per sample and modality, chance that the modality is missing (one is always kept). */
  readonly missingRate: number;
  readonly camera: CameraProfile;
  readonly imageFormat: 'png' | 'jpeg';
  readonly sensors: SensorProfile;
  /** 'inline' writes series into the manifest; 'csv' writes one CSV file per sample. */
  readonly sensorStorage: 'inline' | 'csv';
  readonly dialects: Readonly<Partial<Record<Dialect, number>>>;
  readonly places: readonly string[];
  /** Share of texts that do not name the incident. */
  readonly textVagueRate: number;
  /** Share of sensor series with a weak fault signature. */
  readonly sensorWeakRate: number;
  /** Share of images where the incident is faint. */
  readonly imageWeakRate: number;
  readonly faults?: FaultSpec;
}

/** Class weights with `share` of the mass on one domain's classes and the rest spread over the others. */
export function domainSkew(domain: Domain, share: number): Record<IncidentClass, number> {
  const own: readonly string[] = DOMAINS[domain];
  const others = INCIDENT_CLASSES.length - own.length;
  return Object.fromEntries(INCIDENT_CLASSES.map((c) => [c, own.includes(c) ? share / own.length : (1 - share) / others])) as Record<IncidentClass, number>;
}

const BALANCED = Object.fromEntries(INCIDENT_CLASSES.map((c) => [c, 1])) as Record<IncidentClass, number>;

/** The public pretraining split: balanced, neutral camera and sensors, standard wording, every modality. */
export const PUBLIC_SPEC: CompanySpec = {
  name: 'public',
  description: 'public pretraining data: balanced classes, generic camera, all modalities',
  trainSize: 600,
  testSize: 0,
  classWeights: BALANCED,
  modalities: { image: true, text: true, sensor: true },
  missingRate: 0,
  camera: NEUTRAL_CAMERA,
  imageFormat: 'png',
  sensors: NEUTRAL_SENSORS,
  sensorStorage: 'inline',
  dialects: { standard: 1 },
  places: ['Main Street', 'the north district', 'the harbour', 'the ring road', 'the old town', 'the industrial park'],
  textVagueRate: 0.15,
  sensorWeakRate: 0.15,
  imageWeakRate: 0.15,
};

/** Four companies of a city-safety consortium, as heterogeneous as real ones. */
export const DEFAULT_COMPANIES: readonly CompanySpec[] = [
  {
    name: 'gridco',
    description: 'energy utility: energy-heavy labels, warm overexposed substation cameras, utility jargon',
    trainSize: 400,
    testSize: 150,
    classWeights: domainSkew('energy', 0.7),
    modalities: { image: true, text: true, sensor: true },
    missingRate: 0.1,
    camera: { cast: [1.12, 1.0, 0.82], brightness: 0.06, contrast: 0.85, blur: 0, noise: 0.08, vignette: 0.15 },
    imageFormat: 'png',
    sensors: { offset: [0.8, -0.4, 0.1], gain: [1.3, 0.9, 1.0], noise: 0.35 },
    sensorStorage: 'inline',
    dialects: { utility: 0.7, standard: 0.3 },
    places: ['substation 14', 'feeder F-203', 'switchyard B', 'the 110 kV bay', 'pole 77-A', 'kiosk K12'],
    textVagueRate: 0.2,
    sensorWeakRate: 0.3,
    imageWeakRate: 0.35,
  },
  {
    name: 'homesafe',
    description: 'home security provider: residential labels, no cameras shared, household wording',
    trainSize: 250,
    testSize: 120,
    classWeights: domainSkew('residential', 0.7),
    modalities: { image: false, text: true, sensor: true },
    missingRate: 0.1,
    camera: NEUTRAL_CAMERA,
    imageFormat: 'png',
    sensors: { offset: [-0.3, 0.2, 0.4], gain: [0.8, 1.1, 1.4], noise: 0.4 },
    sensorStorage: 'inline',
    dialects: { residential: 0.75, standard: 0.25 },
    places: ['12 Elm Street', 'flat 4B, Rose Court', 'the Miller house', '7 Birch Lane', 'unit 21, Harbour View', 'the corner bungalow'],
    textVagueRate: 0.2,
    sensorWeakRate: 0.3,
    imageWeakRate: 0.35,
  },
  {
    name: 'metroops',
    description: 'city operations centre: urban labels, cold low-light blurry cameras, no text, sensor CSV files',
    trainSize: 300,
    testSize: 120,
    classWeights: domainSkew('urban', 0.7),
    modalities: { image: true, text: false, sensor: true },
    missingRate: 0.1,
    camera: { cast: [0.85, 0.95, 1.15], brightness: -0.08, contrast: 1.1, blur: 1, noise: 0.12, vignette: 0.35 },
    imageFormat: 'png',
    sensors: { offset: [0, 0.5, -0.3], gain: [1.0, 1.2, 0.8], noise: 0.45 },
    sensorStorage: 'csv',
    dialects: { municipal: 1 },
    places: ['junction 5', 'Central Station', 'the stadium', 'Avenue 9', 'the market square', 'tunnel T2'],
    textVagueRate: 0.2,
    sensorWeakRate: 0.3,
    imageWeakRate: 0.35,
  },
  {
    name: 'smallcity',
    description: 'small municipality: tiny, mixed labels, terse logs, noisy cheap cameras, 20% label noise and duplicates',
    trainSize: 80,
    testSize: 100,
    classWeights: BALANCED,
    modalities: { image: true, text: true, sensor: true },
    missingRate: 0.1,
    camera: { cast: [1.0, 1.08, 0.95], brightness: 0.02, contrast: 0.95, blur: 0, noise: 0.1, vignette: 0.2 },
    imageFormat: 'png',
    sensors: { offset: [0.2, 0.2, 0.2], gain: [1.1, 1.1, 1.1], noise: 0.5 },
    sensorStorage: 'inline',
    dialects: { terse: 0.6, municipal: 0.2, standard: 0.2 },
    places: ['town hall', 'Bridge Rd', 'the school', 'the river path', 'Mill Lane', 'the bus depot'],
    textVagueRate: 0.25,
    sensorWeakRate: 0.3,
    imageWeakRate: 0.35,
    faults: { labelNoise: 0.2, exactDuplicates: 3, nearDuplicates: 3, flatLines: 2, sensorOutliers: 1 },
  },
];
