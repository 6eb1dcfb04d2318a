import type { Rng } from '../prng.js';
import type { IncidentClass } from './classes.js';

/**
 * Ways of writing about incidents. Companies mix them in different proportions, so the same
 * incident reads differently from one company to the next (vocabulary shift).
 */
export type Dialect = 'standard' | 'utility' | 'residential' | 'municipal' | 'terse';

/** How each dialect names each incident. */
const DESCRIPTIONS: Record<IncidentClass, Record<Dialect, readonly string[]>> = {
  transformer_overheat: {
    standard: ['transformer overheating', 'high transformer temperature', 'overheated transformer'],
    utility: ['xfmr hot spot alarm', 'top-oil temperature exceedance', 'winding temp high on the unit'],
    residential: ['hot humming power box near the house', 'burning smell from the street transformer'],
    municipal: ['substation transformer running hot', 'thermal alarm at the district transformer'],
    terse: ['TX overtemp', 'xfmr temp hi', 'transf. hot'],
  },
  line_fault: {
    standard: ['power line fault', 'downed power line', 'electrical line failure'],
    utility: ['feeder trip on earth fault', 'phase-to-ground fault on the overhead line', 'recloser lockout after line fault'],
    residential: ['sparking wire on the pole outside', 'cable down in the street, lights flickered'],
    municipal: ['overhead line down across the road', 'line fault reported by the grid operator'],
    terse: ['line flt', 'OHL fault / trip', 'wire down'],
  },
  intrusion: {
    standard: ['break-in attempt', 'unauthorised entry', 'intruder detected'],
    utility: ['perimeter breach at the substation fence', 'unauthorised access to the switch room'],
    residential: ['someone tried to force the back door', 'stranger climbing through a window', 'door contact alarm, person seen inside'],
    municipal: ['trespasser in a closed municipal building', 'break-in at the depot'],
    terse: ['intrusion alm', 'B&E in progress', 'unauth entry'],
  },
  fire_smoke: {
    standard: ['fire with heavy smoke', 'building fire', 'smoke and flames observed'],
    utility: ['fire in the cable trench', 'smoke from the switchgear cabinet'],
    residential: ['kitchen fire, smoke alarm sounding', 'smoke filling the hallway', 'flames seen in the living room'],
    municipal: ['structure fire reported on the block', 'smoke plume over the market'],
    terse: ['fire/smoke', 'smk alm + flames', 'FIRE'],
  },
  water_leak: {
    standard: ['water leak', 'burst pipe flooding the floor', 'leaking pipe'],
    utility: ['coolant water ingress in the cable vault', 'water pooling in the substation basement'],
    residential: ['water dripping from the ceiling', 'leak under the sink, floor soaked', 'burst pipe in the basement'],
    municipal: ['water main leak flooding the street', 'flooded underpass from a broken main'],
    terse: ['H2O leak', 'leak/flood', 'pipe burst'],
  },
  traffic_collision: {
    standard: ['traffic collision', 'car crash', 'vehicle accident'],
    utility: ['vehicle struck a distribution pole', 'truck collided with the kiosk substation'],
    residential: ['car crashed into the front garden wall', 'two cars collided outside the house'],
    municipal: ['multi-vehicle collision at the junction', 'rear-end crash blocking two lanes'],
    terse: ['RTC', 'MVC 2 veh', 'crash'],
  },
  crowd_surge: {
    standard: ['dangerous crowd surge', 'overcrowding', 'crowd crush risk'],
    utility: ['crowd gathering blocking the substation access'],
    residential: ['huge crowd pushing through the street outside', 'party crowd spilling over, people pushed'],
    municipal: ['crowd density critical at the station exit', 'surge at the stadium gates', 'overcrowded square after the concert'],
    terse: ['crowd surge', 'dens. crit', 'crowd crush risk'],
  },
  streetlight_outage: {
    standard: ['streetlight outage', 'street lights out', 'dark street, lamps off'],
    utility: ['lighting circuit dead on the public lighting feeder', 'street lighting supply lost'],
    residential: ['lamp post outside is dark again', 'no street lights on our road tonight'],
    municipal: ['public lighting failure along the avenue', 'several lanterns out in the district'],
    terse: ['SL out', 'lamp outage', 'lights out'],
  },
};

/** Class-specific details, written the same way by everyone. */
const DETAILS: Record<IncidentClass, readonly string[]> = {
  transformer_overheat: ['Oil temperature keeps rising.', 'Cooling fans running at full speed.', 'Thermal image shows a hot spot on the tank.'],
  line_fault: ['Protection tripped the circuit.', 'Arcing seen at the insulator.', 'Customers downstream lost supply.'],
  intrusion: ['Motion sensors triggered in sequence.', 'Lock appears tampered with.', 'Footsteps recorded by the door sensor.'],
  fire_smoke: ['Temperature climbing fast.', 'Visibility low due to smoke.', 'Occupants evacuating.'],
  water_leak: ['Water level rising slowly.', 'Floor sensors report moisture.', 'Pump cycling on and off.'],
  traffic_collision: ['Debris on the carriageway.', 'Airbags deployed.', 'Traffic backed up behind the scene.'],
  crowd_surge: ['People pushing towards the exit.', 'Barriers under pressure.', 'Noise levels rising in waves.'],
  streetlight_outage: ['Lighting current dropped to zero.', 'Area completely dark after sunset.', 'Timer relay not responding.'],
};

/** Descriptions that say nothing about the class: real logs are not always informative. */
const VAGUE = ['an alarm', 'an incident', 'an anomaly', 'a fault condition', 'an event needing attention'];
const GENERIC_DETAILS = ['Crew informed.', 'Awaiting confirmation on site.', 'Ticket opened.', 'Follow-up scheduled.', 'No further information yet.', ''];
const REPORTERS: Record<Dialect, readonly string[]> = {
  standard: ['An operator', 'A monitoring system', 'A caller', 'A patrol'],
  utility: ['SCADA', 'The control room', 'Field crew', 'The grid monitoring system'],
  residential: ['A resident', 'The home hub', 'A neighbour', 'The alarm panel'],
  municipal: ['City operations', 'A traffic camera operator', 'Police dispatch', 'A city warden'],
  terse: ['OPS', 'AUTO', 'CALLER', 'PATROL'],
};
const ACTIONS: Record<Dialect, readonly string[]> = {
  standard: ['Responders dispatched.', 'Team on the way.', 'Investigation started.'],
  utility: ['Switching crew dispatched.', 'Work order raised.', 'Asset isolated pending inspection.'],
  residential: ['Homeowner notified.', 'Security patrol sent.', 'Insurance contact informed.'],
  municipal: ['Units dispatched.', 'Area cordoned off.', 'Traffic diverted.'],
  terse: ['disp.', 'WO raised', 'unit enrt'],
};

/**
 * Writes one incident report. `vagueRate` is the share of reports that do not name the incident
 * (class-free wording), which keeps text alone from being a perfect predictor.
 */
export function writeIncidentText(cls: IncidentClass, rng: Rng, dialects: Readonly<Partial<Record<Dialect, number>>>, place: string, vagueRate: number): string {
  const names = Object.keys(dialects) as Dialect[];
  const dialect = names[rng.weighted(names.map((n) => dialects[n] ?? 0))] as Dialect;
  const vague = rng.bool(vagueRate);
  const desc = vague ? rng.pick(VAGUE) : rng.pick(DESCRIPTIONS[cls][dialect]);
  const detail = !vague && rng.bool(0.6) ? rng.pick(DETAILS[cls]) : rng.pick(GENERIC_DETAILS);
  const time = `${String(rng.int(0, 23)).padStart(2, '0')}:${String(rng.int(0, 59)).padStart(2, '0')}`;
  const reporter = rng.pick(REPORTERS[dialect]);
  const action = rng.pick(ACTIONS[dialect]);
  const ref = `#${rng.int(1000, 9999)}`;
  const form = rng.int(0, 2);
  const parts =
    dialect === 'terse'
      ? [`${time} ${desc} @ ${place} ${ref}.`, detail, action]
      : form === 0
        ? [`${time} ${reporter} reported ${desc} at ${place}.`, detail, action]
        : form === 1
          ? [`Incident ${ref}: ${desc}, ${place}, ${time}.`, detail, action]
          : [`${reporter} logged ${desc} near ${place} (${time}).`, detail, action];
  return parts.filter((p) => p !== '').join(' ');
}
