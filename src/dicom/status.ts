/**
 * DIMSE status codes as one typed table.
 *
 * Names follow PS3.7 Annex C (and the service-specific statuses of PS3.4 B.2.3 for Storage).
 * The `0xC0xx` entries marked `gateway` are this gateway's own sub-codes inside the
 * "Error: Cannot understand" range that PS3.4 B.2.3 leaves to the implementation; they are
 * listed in docs/conformance-statement.md. Nothing else in the code base may write a status
 * as a bare hex literal: import it from here.
 *
 * @see PS3.7 Annex C (Status Type Encoding)
 * @see PS3.4 Table B.2-1 (C-STORE statuses)
 */
export type StatusCategory = 'success' | 'warning' | 'failure' | 'cancel' | 'pending';

export interface StatusInfo {
  readonly code: number;
  readonly name: string;
  readonly category: StatusCategory;
  /** Where the meaning comes from. */
  readonly source: 'PS3.7' | 'PS3.4' | 'gateway';
}

const table = {
  Success: { code: 0x0000, name: 'Success', category: 'success', source: 'PS3.7' },
  // Warnings
  WarningCoercionOfDataElements: { code: 0xb000, name: 'Warning: Coercion of Data Elements', category: 'warning', source: 'PS3.4' },
  WarningElementsDiscarded: { code: 0xb006, name: 'Warning: Elements Discarded', category: 'warning', source: 'PS3.4' },
  WarningDataSetDoesNotMatchSopClass: { code: 0xb007, name: 'Warning: Data Set does not match SOP Class', category: 'warning', source: 'PS3.4' },
  // General failures, PS3.7 C.4
  ProcessingFailure: { code: 0x0110, name: 'Failure: Processing failure', category: 'failure', source: 'PS3.7' },
  DuplicateSopInstance: { code: 0x0111, name: 'Failure: Duplicate SOP Instance', category: 'failure', source: 'PS3.7' },
  NoSuchObjectInstance: { code: 0x0112, name: 'Failure: No such object instance', category: 'failure', source: 'PS3.7' },
  NoSuchEventType: { code: 0x0113, name: 'Failure: No such event type', category: 'failure', source: 'PS3.7' },
  InvalidArgumentValue: { code: 0x0115, name: 'Failure: Invalid argument value', category: 'failure', source: 'PS3.7' },
  InvalidObjectInstance: { code: 0x0117, name: 'Failure: Invalid object instance', category: 'failure', source: 'PS3.7' },
  NoSuchSopClass: { code: 0x0118, name: 'Failure: No such SOP Class', category: 'failure', source: 'PS3.7' },
  ClassInstanceConflict: { code: 0x0119, name: 'Failure: Class-Instance conflict', category: 'failure', source: 'PS3.7' },
  MissingAttribute: { code: 0x0120, name: 'Failure: Missing Attribute', category: 'failure', source: 'PS3.7' },
  SopClassNotSupported: { code: 0x0122, name: 'Refused: SOP Class not supported', category: 'failure', source: 'PS3.7' },
  NoSuchActionType: { code: 0x0123, name: 'Failure: No such action type', category: 'failure', source: 'PS3.7' },
  NotAuthorized: { code: 0x0124, name: 'Refused: Not authorized', category: 'failure', source: 'PS3.7' },
  // Storage Commitment Failure Reason (0008,1197), PS3.3 C.14.1.1
  DuplicateTransactionUid: { code: 0x0131, name: 'Failure: Duplicate transaction UID', category: 'failure', source: 'PS3.4' },
  DuplicateInvocation: { code: 0x0210, name: 'Failure: Duplicate invocation', category: 'failure', source: 'PS3.7' },
  UnrecognizedOperation: { code: 0x0211, name: 'Failure: Unrecognized operation', category: 'failure', source: 'PS3.7' },
  MistypedArgument: { code: 0x0212, name: 'Failure: Mistyped argument', category: 'failure', source: 'PS3.7' },
  ResourceLimitation: { code: 0x0213, name: 'Failure: Resource limitation', category: 'failure', source: 'PS3.7' },
  // Storage service class, PS3.4 B.2.3
  OutOfResources: { code: 0xa700, name: 'Refused: Out of Resources', category: 'failure', source: 'PS3.4' },
  DataSetDoesNotMatchSopClass: { code: 0xa900, name: 'Error: Data Set does not match SOP Class', category: 'failure', source: 'PS3.4' },
  CannotUnderstand: { code: 0xc000, name: 'Error: Cannot understand', category: 'failure', source: 'PS3.4' },
  // Gateway-specific "Cannot understand" sub-codes (PS3.4 B.2.3 leaves 0xCxxx to the implementation)
  CannotUnderstandTruncated: { code: 0xc001, name: 'Error: Cannot understand - data set truncated', category: 'failure', source: 'gateway' },
  CannotUnderstandMalformed: { code: 0xc002, name: 'Error: Cannot understand - data set malformed', category: 'failure', source: 'gateway' },
  CannotUnderstandInstanceMismatch: { code: 0xc003, name: 'Error: Cannot understand - SOP Instance UID differs from command', category: 'failure', source: 'gateway' },
  CannotUnderstandMissingIdentity: { code: 0xc004, name: 'Error: Cannot understand - SOP Class/Instance UID missing', category: 'failure', source: 'gateway' },
  CannotUnderstandTooDeep: { code: 0xc005, name: 'Error: Cannot understand - sequences nested too deep', category: 'failure', source: 'gateway' },
  Cancel: { code: 0xfe00, name: 'Cancel', category: 'cancel', source: 'PS3.7' },
  Pending: { code: 0xff00, name: 'Pending', category: 'pending', source: 'PS3.7' },
  PendingWithWarnings: { code: 0xff01, name: 'Pending: with warnings', category: 'pending', source: 'PS3.7' },
} as const satisfies Record<string, StatusInfo>;

export type StatusName = keyof typeof table;
export const Status: { readonly [K in StatusName]: (typeof table)[K] } = table;

const byCode = new Map<number, StatusInfo>(Object.values(table).map((s) => [s.code, s]));

/**
 * The category of any 16-bit status, including codes not in the table, by the ranges of
 * PS3.7 Annex C: 0x0000 success; 0x0001, 0x0107, 0x0116 and 0xBxxx warning; 0xFE00 cancel;
 * 0xFF00/0xFF01 pending; everything else (0x01xx, 0x02xx, 0xAxxx, 0xCxxx) failure.
 */
export function category(code: number): StatusCategory {
  const known = byCode.get(code);
  if (known) return known.category;
  if (code === 0x0000) return 'success';
  if (code === 0x0001 || code === 0x0107 || code === 0x0116 || (code & 0xf000) === 0xb000) return 'warning';
  if (code === 0xfe00) return 'cancel';
  if (code === 0xff00 || code === 0xff01) return 'pending';
  return 'failure';
}

/** The table entry of a code, or a synthesised description for codes outside the table. */
export function describe(code: number): StatusInfo {
  return byCode.get(code) ?? { code, name: `Status 0x${hex4(code)}`, category: category(code), source: 'PS3.7' };
}

export function hex4(code: number): string {
  return code.toString(16).toUpperCase().padStart(4, '0');
}

/** Storage "Refused: Out of Resources" is the whole 0xA7xx range. @see PS3.4 Table B.2-1 */
export function isOutOfResources(code: number): boolean {
  return (code & 0xff00) === Status.OutOfResources.code;
}
