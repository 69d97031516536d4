/**
 * UIDs the gateway itself uses. The root is a UUID-derived UID (2.25.<uuid as integer>),
 * which PS3.5 Annex B.2 allows without a registered organisation root.
 *
 * @see PS3.5 §9 and Annex B.2
 */
export const IMPLEMENTATION_CLASS_UID = '2.25.69694572286431008790567656379020305397';
/** At most 16 characters (SH). @see PS3.7 Annex D.3.3.2 */
export const IMPLEMENTATION_VERSION_NAME = 'PACS_EDGE_0_1';
/** DICOM Application Context Name. @see PS3.7 Annex A.2.1 */
export const APPLICATION_CONTEXT_NAME = '1.2.840.10008.3.1.1.1';

/** True when `uid` is a syntactically valid UID: ≤64 chars, dot-separated numbers, no leading zeros. @see PS3.5 §9.1 */
export function isValidUid(uid: string): boolean {
  if (uid.length === 0 || uid.length > 64) return false;
  return uid.split('.').every((c) => /^(0|[1-9][0-9]*)$/.test(c));
}
