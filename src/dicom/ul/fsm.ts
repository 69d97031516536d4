/**
 * The DICOM Upper Layer protocol state machine, as a table: states Sta1–Sta13, events
 * Evt1–Evt19 and the actions AE-, DT-, AR- and AA- of PS3.8 §9.2. Pure data and one lookup;
 * {@link UpperLayer} (provider.ts) carries the actions out.
 *
 * A pair the standard leaves blank cannot happen in a conforming implementation: for the
 * events that come from the peer or the network it does not (every peer event has an entry in
 * every state but Sta1 and Sta4, where no PDU can arrive), and for a local primitive it is a
 * programming error, which {@link transition} reports as `undefined`.
 *
 * @see PS3.8 §9.2.1 (states, Table 9-1), §9.2.2 (events, Table 9-9), Table 9-10 (state table),
 *      Tables 9-6 to 9-8 (actions)
 */

export const STATES = {
  Sta1: 'Idle',
  Sta2: 'Transport connection open (awaiting A-ASSOCIATE-RQ PDU)',
  Sta3: 'Awaiting local A-ASSOCIATE response primitive',
  Sta4: 'Awaiting transport connection opening to complete',
  Sta5: 'Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU',
  Sta6: 'Association established and ready for data transfer',
  Sta7: 'Awaiting A-RELEASE-RP PDU',
  Sta8: 'Awaiting local A-RELEASE response primitive',
  Sta9: 'Release collision requestor side; awaiting A-RELEASE response primitive',
  Sta10: 'Release collision acceptor side; awaiting A-RELEASE-RP PDU',
  Sta11: 'Release collision requestor side; awaiting A-RELEASE-RP PDU',
  Sta12: 'Release collision acceptor side; awaiting A-RELEASE response primitive',
  Sta13: 'Awaiting transport connection close indication (association no longer exists)',
} as const;
export type State = keyof typeof STATES;

export const EVENTS = {
  Evt1: 'A-ASSOCIATE request (local user)',
  Evt2: 'Transport connect confirmation (local transport service)',
  Evt3: 'A-ASSOCIATE-AC PDU received',
  Evt4: 'A-ASSOCIATE-RJ PDU received',
  Evt5: 'Transport connection indication (local transport service)',
  Evt6: 'A-ASSOCIATE-RQ PDU received',
  Evt7: 'A-ASSOCIATE response primitive (accept)',
  Evt8: 'A-ASSOCIATE response primitive (reject)',
  Evt9: 'P-DATA request primitive',
  Evt10: 'P-DATA-TF PDU received',
  Evt11: 'A-RELEASE request primitive',
  Evt12: 'A-RELEASE-RQ PDU received',
  Evt13: 'A-RELEASE-RP PDU received',
  Evt14: 'A-RELEASE response primitive',
  Evt15: 'A-ABORT request primitive',
  Evt16: 'A-ABORT PDU received',
  Evt17: 'Transport connection closed indication',
  Evt18: 'ARTIM timer expired',
  Evt19: 'Unrecognized or invalid PDU received',
} as const;
export type Event = keyof typeof EVENTS;

/**
 * What each action does, and the state it leads to. AE-6 and AR-8 choose between two states
 * (whether the provider accepts the request; which side of a release collision we are).
 */
export const ACTIONS = {
  'AE-1': { does: 'Issue TRANSPORT CONNECT request primitive to local transport service', next: ['Sta4'] },
  'AE-2': { does: 'Send A-ASSOCIATE-RQ PDU', next: ['Sta5'] },
  'AE-3': { does: 'Issue A-ASSOCIATE confirmation (accept) primitive', next: ['Sta6'] },
  'AE-4': { does: 'Issue A-ASSOCIATE confirmation (reject) primitive and close transport connection', next: ['Sta1'] },
  'AE-5': { does: 'Issue transport connection response primitive; start ARTIM timer', next: ['Sta2'] },
  'AE-6': {
    does: 'Stop ARTIM timer; if the A-ASSOCIATE-RQ is acceptable by the service provider, issue A-ASSOCIATE indication primitive, otherwise send A-ASSOCIATE-RJ PDU and start ARTIM timer',
    next: ['Sta3', 'Sta13'],
  },
  'AE-7': { does: 'Send A-ASSOCIATE-AC PDU', next: ['Sta6'] },
  'AE-8': { does: 'Send A-ASSOCIATE-RJ PDU and start ARTIM timer', next: ['Sta13'] },
  'DT-1': { does: 'Send P-DATA-TF PDU', next: ['Sta6'] },
  'DT-2': { does: 'Send P-DATA indication primitive', next: ['Sta6'] },
  'AR-1': { does: 'Send A-RELEASE-RQ PDU', next: ['Sta7'] },
  'AR-2': { does: 'Issue A-RELEASE indication primitive', next: ['Sta8'] },
  'AR-3': { does: 'Issue A-RELEASE confirmation primitive and close transport connection', next: ['Sta1'] },
  'AR-4': { does: 'Issue A-RELEASE-RP PDU and start ARTIM timer', next: ['Sta13'] },
  'AR-5': { does: 'Stop ARTIM timer', next: ['Sta1'] },
  'AR-6': { does: 'Issue P-DATA indication', next: ['Sta7'] },
  'AR-7': { does: 'Issue P-DATA-TF PDU', next: ['Sta8'] },
  'AR-8': { does: 'Issue A-RELEASE indication (release collision): requestor to Sta9, acceptor to Sta10', next: ['Sta9', 'Sta10'] },
  'AR-9': { does: 'Send A-RELEASE-RP PDU', next: ['Sta11'] },
  'AR-10': { does: 'Issue A-RELEASE confirmation primitive', next: ['Sta12'] },
  'AA-1': { does: 'Send A-ABORT PDU (service-user source) and start (or restart) ARTIM timer', next: ['Sta13'] },
  'AA-2': { does: 'Stop ARTIM timer if running; close transport connection', next: ['Sta1'] },
  'AA-3': { does: 'Issue A-ABORT (service-user) or A-P-ABORT (service-provider) indication and close transport connection', next: ['Sta1'] },
  'AA-4': { does: 'Issue A-P-ABORT indication primitive', next: ['Sta1'] },
  'AA-5': { does: 'Stop ARTIM timer', next: ['Sta1'] },
  'AA-6': { does: 'Ignore PDU', next: ['Sta13'] },
  'AA-7': { does: 'Send A-ABORT PDU', next: ['Sta13'] },
  'AA-8': { does: 'Send A-ABORT PDU (service-provider source), issue an A-P-ABORT indication, and start ARTIM timer', next: ['Sta13'] },
} as const satisfies Record<string, { does: string; next: readonly State[] }>;
export type Action = keyof typeof ACTIONS;

/** States in which the association exists (Sta3 to Sta12, Sta4 excepted: no PDU can arrive there). */
const ESTABLISHING_OR_UP = ['Sta3', 'Sta5', 'Sta6', 'Sta7', 'Sta8', 'Sta9', 'Sta10', 'Sta11', 'Sta12'] as const;

/** `states` → `action`, as one row of the table. */
function row(entries: readonly (readonly [readonly State[] | State, Action])[]): Partial<Record<State, Action>> {
  const out: Partial<Record<State, Action>> = {};
  for (const [states, action] of entries) for (const s of typeof states === 'string' ? [states] : states) out[s] = action;
  return out;
}

/** A PDU that is out of place: AA-1 before the association exists, AA-8 in it, AA-6 in Sta13. */
const unexpectedPdu = (exceptions: readonly (readonly [State, Action])[] = []): Partial<Record<State, Action>> =>
  row([['Sta2', 'AA-1'], [ESTABLISHING_OR_UP, 'AA-8'], ['Sta13', 'AA-6'], ...exceptions]);

/**
 * PS3.8 Table 9-10, one row per event. Each row is written as the standard's default for the
 * row's kind of event plus the cells that differ.
 */
export const TABLE: Readonly<Record<Event, Partial<Record<State, Action>>>> = {
  Evt1: row([['Sta1', 'AE-1']]),
  Evt2: row([['Sta4', 'AE-2']]),
  Evt3: unexpectedPdu([['Sta5', 'AE-3']]),
  Evt4: unexpectedPdu([['Sta5', 'AE-4']]),
  Evt5: row([['Sta1', 'AE-5']]),
  Evt6: row([['Sta2', 'AE-6'], [ESTABLISHING_OR_UP, 'AA-8'], ['Sta13', 'AA-7']]),
  Evt7: row([['Sta3', 'AE-7']]),
  Evt8: row([['Sta3', 'AE-8']]),
  Evt9: row([['Sta6', 'DT-1'], ['Sta8', 'AR-7']]),
  Evt10: unexpectedPdu([['Sta6', 'DT-2'], ['Sta7', 'AR-6']]),
  Evt11: row([['Sta6', 'AR-1']]),
  Evt12: unexpectedPdu([['Sta6', 'AR-2'], ['Sta7', 'AR-8']]),
  Evt13: unexpectedPdu([['Sta7', 'AR-3'], ['Sta10', 'AR-10'], ['Sta11', 'AR-3']]),
  Evt14: row([['Sta8', 'AR-4'], ['Sta9', 'AR-9'], ['Sta12', 'AR-4']]),
  Evt15: row([['Sta3', 'AA-1'], ['Sta4', 'AA-2'], [ESTABLISHING_OR_UP, 'AA-1']]),
  Evt16: row([['Sta2', 'AA-2'], [ESTABLISHING_OR_UP, 'AA-3'], ['Sta13', 'AA-2']]),
  Evt17: row([['Sta2', 'AA-5'], ['Sta4', 'AA-4'], [ESTABLISHING_OR_UP, 'AA-4'], ['Sta13', 'AR-5']]),
  Evt18: row([['Sta2', 'AA-2'], ['Sta13', 'AA-2']]),
  Evt19: row([['Sta2', 'AA-1'], [ESTABLISHING_OR_UP, 'AA-8'], ['Sta13', 'AA-7']]),
};

/** The action for `event` in `state`, or undefined where PS3.8 Table 9-10 has no entry. */
export function transition(state: State, event: Event): Action | undefined {
  return TABLE[event][state];
}

/** The events that come from the peer (PDUs) or the network, as opposed to local primitives. */
export const PEER_EVENTS: readonly Event[] = ['Evt3', 'Evt4', 'Evt6', 'Evt10', 'Evt12', 'Evt13', 'Evt16', 'Evt17', 'Evt19'];
