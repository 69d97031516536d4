/**
 * The spool index's key layout: every LevelDB key the spool writes, how it is built and how it
 * is read back. Nothing else spells a key, so a prefix cannot be reused by mistake and a reader
 * of the index (recovery, the offline commands) agrees with its writer.
 *
 * Destination names are restricted to [A-Za-z0-9_.-] (config validation), so "!" separates
 * safely; ids are decimal (record-codec.ts, formatId), UIDs are digits and dots (PS3.5 §9.1).
 *
 *   o!<id>              sealed record (see record-codec.ts)
 *   q!<dest>!<id>       pending for dest
 *   d!<dest>!<id>       dead letter for dest (JSON)
 *   u!<sopInstanceUid>  id of the newest object with that UID
 *   c!<id>              the object's data was durable before it was acknowledged
 *   x!<id>              its file could not be opened at the last start (quarantined, see recovery.ts)
 *   z!<id>              a file replacement under way (compression at rest, see rewriter.ts)
 *   h!<sopInstanceUid>  when every destination confirmed it (Storage Commitment)
 *   s!<studyUid>        what happened to the study, per destination (studies.ts)
 *   m!format            the spool's format version (format.ts)
 *   m!index-mac         every record is authenticated (MACed marker, record-codec.ts, index-auth.ts)
 *   m!sync              a throw-away entry whose synced write makes earlier unsynced ones durable
 */

/** The one-letter families of keys (see the table above). */
export type KeyFamily = 'o' | 'q' | 'd' | 'u' | 'c' | 'x' | 'z' | 'h' | 's';

export const objectKey = (id: string): string => `o!${id}`;
export const queueKey = (destination: string, id: string): string => `q!${destination}!${id}`;
export const deadLetterKey = (destination: string, id: string): string => `d!${destination}!${id}`;
export const uidKey = (sopInstanceUid: string): string => `u!${sopInstanceUid}`;
export const durableKey = (id: string): string => `c!${id}`;
export const quarantineKey = (id: string): string => `x!${id}`;
export const rewriteKey = (id: string): string => `z!${id}`;
export const handedOverKey = (sopInstanceUid: string): string => `h!${sopInstanceUid}`;
export const studyKey = (studyUid: string): string => `s!${studyUid}`;
export const FORMAT_KEY = 'm!format';
export const SYNC_KEY = 'm!sync';

/** Bounds of an iteration over every key of a family ("\xff" sorts after any id, UID or name). */
export function keyRange(family: KeyFamily): { gte: string; lt: string } {
  return { gte: `${family}!`, lt: `${family}!\xff` };
}

/** Bounds of the dead letters of one destination, or of all of them. */
export function deadLetterRange(destination?: string): { gte: string; lt: string } {
  const prefix = destination ? `d!${destination}!` : 'd!';
  return { gte: prefix, lt: `${prefix}\xff` };
}

/** What follows the family of a one-part key (`o!`, `c!`, `x!`, `z!`, `u!`, `h!`, `s!`). */
export const idOf = (key: string): string => key.slice(2);

/** The destination and id of a `q!` or `d!` key. */
export function destinationAndId(key: string): { destination: string; id: string } {
  const [, destination, id] = key.split('!') as [string, string, string];
  return { destination, id };
}
