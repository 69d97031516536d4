import type { ForwardConfig } from '../config/types.js';
import type { ObjectInfo } from './spool.js';

/**
 * Routing (`forward[].match`): the destinations an object goes to. A destination without
 * `match` takes everything; with it, every condition given must hold, and a list holds when any
 * entry does (modality compared without case, calling AE titles as given, SOP Classes as UIDs).
 * An object no destination takes becomes an `unrouted` dead letter (LevelSpool), never silently
 * kept or dropped: docs/forwarding.md ("Routing") says why.
 */
export function matches(m: ForwardConfig['match'], info: Pick<ObjectInfo, 'callingAeTitle' | 'modality' | 'sopClassUid'>): boolean {
  if (!m) return true;
  if (m.callingAeTitle && !m.callingAeTitle.includes(info.callingAeTitle)) return false;
  if (m.modality && !m.modality.includes((info.modality ?? '').toUpperCase())) return false;
  if (m.sopClass && !m.sopClass.includes(info.sopClassUid)) return false;
  if (m.notSopClass && m.notSopClass.includes(info.sopClassUid)) return false;
  return true;
}

/** The routing function of a configuration's destinations. */
export function routeOf(forward: readonly ForwardConfig[]): (info: Pick<ObjectInfo, 'callingAeTitle' | 'modality' | 'sopClassUid'>) => string[] {
  return (info) => forward.filter((f) => matches(f.match, info)).map((f) => f.name);
}
