import { describe, expect, it } from 'vitest';
import { ACTIONS, type Action, type Event, EVENTS, PEER_EVENTS, type State, STATES, TABLE, transition } from '../../../src/dicom/ul/fsm.js';

/**
 * PS3.8 Table 9-10 as the standard prints it: one line per event, one column per state
 * (Sta1 … Sta13), '-' where the standard leaves the cell blank. Written out independently of
 * the module's row-by-row construction, so a slip in either shows here.
 */
const STANDARD = `
Evt1  AE-1 -    -    -    -    -    -     -    -    -     -    -    -
Evt2  -    -    -    AE-2 -    -    -     -    -    -     -    -    -
Evt3  -    AA-1 AA-8 -    AE-3 AA-8 AA-8  AA-8 AA-8 AA-8  AA-8 AA-8 AA-6
Evt4  -    AA-1 AA-8 -    AE-4 AA-8 AA-8  AA-8 AA-8 AA-8  AA-8 AA-8 AA-6
Evt5  AE-5 -    -    -    -    -    -     -    -    -     -    -    -
Evt6  -    AE-6 AA-8 -    AA-8 AA-8 AA-8  AA-8 AA-8 AA-8  AA-8 AA-8 AA-7
Evt7  -    -    AE-7 -    -    -    -     -    -    -     -    -    -
Evt8  -    -    AE-8 -    -    -    -     -    -    -     -    -    -
Evt9  -    -    -    -    -    DT-1 -     AR-7 -    -     -    -    -
Evt10 -    AA-1 AA-8 -    AA-8 DT-2 AR-6  AA-8 AA-8 AA-8  AA-8 AA-8 AA-6
Evt11 -    -    -    -    -    AR-1 -     -    -    -     -    -    -
Evt12 -    AA-1 AA-8 -    AA-8 AR-2 AR-8  AA-8 AA-8 AA-8  AA-8 AA-8 AA-6
Evt13 -    AA-1 AA-8 -    AA-8 AA-8 AR-3  AA-8 AA-8 AR-10 AR-3 AA-8 AA-6
Evt14 -    -    -    -    -    -    -     AR-4 AR-9 -     -    AR-4 -
Evt15 -    -    AA-1 AA-2 AA-1 AA-1 AA-1  AA-1 AA-1 AA-1  AA-1 AA-1 -
Evt16 -    AA-2 AA-3 -    AA-3 AA-3 AA-3  AA-3 AA-3 AA-3  AA-3 AA-3 AA-2
Evt17 -    AA-5 AA-4 AA-4 AA-4 AA-4 AA-4  AA-4 AA-4 AA-4  AA-4 AA-4 AR-5
Evt18 -    AA-2 -    -    -    -    -     -    -    -     -    -    AA-2
Evt19 -    AA-1 AA-8 -    AA-8 AA-8 AA-8  AA-8 AA-8 AA-8  AA-8 AA-8 AA-7
`;

const states = Object.keys(STATES) as State[];
const standard = new Map<string, Action | undefined>();
for (const line of STANDARD.trim().split('\n')) {
  const [event, ...cells] = line.trim().split(/\s+/);
  cells.forEach((c, i) => standard.set(`${event} ${states[i]}`, c === '-' ? undefined : (c as Action)));
}

describe('PS3.8 state table', () => {
  it('has 13 states and 19 events', () => {
    expect(states).toHaveLength(13);
    expect(Object.keys(EVENTS)).toHaveLength(19);
    expect(standard.size).toBe(13 * 19);
  });

  for (const event of Object.keys(EVENTS) as Event[]) {
    it(`${event} (${EVENTS[event]}): every cell as the standard prints it`, () => {
      const got = states.map((s) => transition(s, event) ?? '-');
      const want = states.map((s) => standard.get(`${event} ${s}`) ?? '-');
      expect(got).toEqual(want);
    });
  }

  it('every event from the peer or the network has an action in every state where a connection exists', () => {
    for (const e of PEER_EVENTS) for (const s of states.filter((x) => x !== 'Sta1' && x !== 'Sta4')) expect(TABLE[e][s], `${e} in ${s}`).toBeDefined();
  });

  it('every action the table uses is defined, and leads to a state', () => {
    for (const row of Object.values(TABLE)) for (const a of Object.values(row)) expect(ACTIONS[a!].next.length).toBeGreaterThan(0);
  });
});
