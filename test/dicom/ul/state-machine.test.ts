import { afterEach, describe, expect, it } from 'vitest';
import { Abort } from '../../../src/dicom/pdu.js';
import { ACTIONS, type Action, type Event, type State, STATES, TABLE } from '../../../src/dicom/ul/fsm.js';
import { PrimitiveNotAllowed } from '../../../src/dicom/ul/provider.js';
import { AC, COMMAND, Harness, PduType, PEER_BYTES, RJ, RQ } from './peer.js';

/**
 * The DICOM upper layer, state by state: for every state of PS3.8 Table 9-10, one test per
 * event that can occur in it. A scripted peer on a loopback connection brings the provider into
 * the state, causes the event (its PDU, a local primitive, a close, the ARTIM timer), and the
 * test checks the action the table prescribes happened: the transition, the PDU on the wire
 * (an out-of-place PDU gets the A-ABORT with the standard's source and reason), the indication
 * to the user, and the close.
 *
 * @see PS3.8 §9.2 (Tables 9-6 to 9-10)
 */

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** Bring a fresh provider into `state`; `event` is what the test will cause next. */
async function reach(state: State, event: Event): Promise<Harness> {
  switch (state) {
    case 'Sta1':
      return new Harness(event === 'Evt1' ? 'requestor' : 'acceptor');
    case 'Sta2': {
      const x = new Harness('acceptor');
      await x.accept();
      return x;
    }
    case 'Sta3': {
      const x = await reach('Sta2', 'Evt6');
      x.send(RQ);
      await x.untilState('Sta3');
      return x;
    }
    case 'Sta4': {
      const x = new Harness('requestor');
      // Evt17 in Sta4: the connection attempt fails.
      await x.request({ listen: event !== 'Evt17' });
      return x;
    }
    case 'Sta5': {
      const x = new Harness('requestor');
      await x.request();
      await x.until(() => x.pdus(PduType.AssociateRq).length === 1, 'the A-ASSOCIATE-RQ');
      return x;
    }
    case 'Sta6': {
      const x = await reach('Sta3', 'Evt7');
      x.ul.accept(AC);
      await x.untilState('Sta6');
      return x;
    }
    case 'Sta7': {
      const x = await reach('Sta5', 'Evt3');
      x.send(AC);
      await x.untilState('Sta6');
      x.ul.releaseRequest();
      await x.untilState('Sta7');
      return x;
    }
    case 'Sta8': {
      const x = await reach('Sta6', 'Evt12');
      x.send(PEER_BYTES.Evt12!);
      await x.untilState('Sta8');
      return x;
    }
    case 'Sta9': {
      const x = await reach('Sta7', 'Evt12');
      x.send(PEER_BYTES.Evt12!);
      await x.untilState('Sta9');
      return x;
    }
    case 'Sta10': {
      const x = await reach('Sta6', 'Evt11');
      x.ul.releaseRequest();
      await x.untilState('Sta7');
      x.send(PEER_BYTES.Evt12!);
      await x.untilState('Sta10');
      return x;
    }
    case 'Sta11': {
      const x = await reach('Sta9', 'Evt14');
      x.ul.releaseResponse();
      await x.untilState('Sta11');
      return x;
    }
    case 'Sta12': {
      const x = await reach('Sta10', 'Evt13');
      x.send(PEER_BYTES.Evt13!);
      await x.untilState('Sta12');
      return x;
    }
    case 'Sta13': {
      const x = await reach('Sta3', 'Evt8');
      x.ul.reject(RJ);
      await x.untilState('Sta13');
      return x;
    }
  }
}

/** Cause `event` (the provider is in its state). */
async function cause(x: Harness, event: Event): Promise<void> {
  const bytes = PEER_BYTES[event];
  if (bytes) return void x.send(bytes);
  switch (event) {
    case 'Evt1':
      return x.request();
    case 'Evt5':
      return x.accept();
    case 'Evt7':
      return x.ul.accept(AC);
    case 'Evt8':
      return x.ul.reject(RJ);
    case 'Evt9':
      return x.ul.send(1, true, COMMAND, 0);
    case 'Evt11':
      return x.ul.releaseRequest();
    case 'Evt14':
      return x.ul.releaseResponse();
    case 'Evt15':
      return x.ul.abort();
    case 'Evt17':
      // Sta4: the failed connection attempt is the event; elsewhere the peer drops the connection.
      if (x.ul.state !== 'Sta4') x.peer.destroy();
      return;
    case 'Evt2': // the connection the requestor asked for opens by itself
    case 'Evt18': // the ARTIM timer expires by itself
      return;
    default:
      throw new Error(`no way to cause ${event}`);
  }
}

/** The state an action leads to (AE-6 and AR-8 have two; which one depends on the case). */
function nextState(action: Action, x: Harness): State {
  if (action === 'AE-6') return 'Sta3'; // every decodable request is acceptable to the provider
  if (action === 'AR-8') return x.role === 'requestor' ? 'Sta9' : 'Sta10';
  return ACTIONS[action].next[0] as State;
}

/** The A-ABORT reason for an out-of-place PDU (2) or an unrecognised one (1). @see PS3.8 Table 9-26 */
const providerReason = (event: Event) => (event === 'Evt19' ? Abort.Reason.UnrecognizedPdu : Abort.Reason.UnexpectedPdu);

/** Check what the action does that the peer or the user can see. */
async function expectEffects(x: Harness, action: Action, event: Event): Promise<void> {
  const pdu = async (type: number) => {
    await x.until(() => x.pdus(type).length > 0, `PDU type ${type}`);
    return x.pdus(type).at(-1)!;
  };
  const closed = () => x.until(() => x.peerClosed, 'the connection to close');
  const indicated = (what: string) => x.until(() => x.indications.some((i) => i.startsWith(what)), what);
  const abortSent = async (source: number, reason: number) => {
    const a = await pdu(PduType.Abort);
    expect([a.body[2], a.body[3]]).toEqual([source, reason]);
  };
  switch (action) {
    case 'AE-1':
    case 'AE-5':
      expect(x.transitions[0]).toMatchObject({ from: 'Sta1', action });
      return;
    case 'AE-2':
      expect((await pdu(PduType.AssociateRq)).body.length).toBe(RQ.length - 6);
      return;
    case 'AE-3':
      return indicated('A-ASSOCIATE confirmation (accept)');
    case 'AE-4':
      await indicated('A-ASSOCIATE confirmation (reject)');
      return closed();
    case 'AE-6':
      return indicated('A-ASSOCIATE indication');
    case 'AE-7':
      await pdu(PduType.AssociateAc);
      return;
    case 'AE-8':
      expect((await pdu(PduType.AssociateRj)).body).toEqual(RJ.subarray(6));
      return;
    case 'DT-1':
    case 'AR-7':
      expect((await pdu(PduType.PData)).body.subarray(6).toString()).toBe(COMMAND.toString());
      return;
    case 'DT-2':
    case 'AR-6':
      return indicated(`P-DATA indication: command on 1: ${COMMAND.toString()}`);
    case 'AR-1':
      await pdu(PduType.ReleaseRq);
      return;
    case 'AR-2':
    case 'AR-8':
      return indicated('A-RELEASE indication');
    case 'AR-3':
      await indicated('A-RELEASE confirmation');
      return closed();
    case 'AR-4':
    case 'AR-9':
      await pdu(PduType.ReleaseRp);
      return;
    case 'AR-10':
      return indicated('A-RELEASE confirmation');
    case 'AR-5':
    case 'AA-5':
      await x.until(() => x.indications.includes('closed'), 'the closed indication');
      return;
    case 'AA-1':
      return abortSent(Abort.Source.ServiceUser, Abort.Reason.NotSpecified);
    case 'AA-2':
      if (event === 'Evt15') return; // Sta4: nothing was connected yet
      return closed();
    case 'AA-3':
      await indicated('abort indication: peer');
      return closed();
    case 'AA-4':
      return indicated('abort indication: transport');
    case 'AA-6':
      // The PDU is ignored: no A-ABORT, no indication, still waiting for the close.
      await new Promise((r) => setTimeout(r, 50));
      expect(x.pdus(PduType.Abort)).toEqual([]);
      expect(x.ul.state).toBe('Sta13');
      return;
    case 'AA-7':
      return abortSent(Abort.Source.ServiceProvider, providerReason(event));
    case 'AA-8':
      await abortSent(Abort.Source.ServiceProvider, providerReason(event));
      return indicated('abort indication: protocol');
  }
}

const ALL_EVENTS = Object.keys(TABLE) as Event[];
/** Local primitives that a test can issue in any state (Evt1 and Evt5 make connections). */
const LOCAL: readonly Event[] = ['Evt7', 'Evt8', 'Evt9', 'Evt11', 'Evt14'];
const issue = (x: Harness, e: Event) => () => cause(x, e);

for (const state of Object.keys(STATES) as State[]) {
  describe(`${state}: ${STATES[state]}`, () => {
    for (const event of ALL_EVENTS.filter((e) => TABLE[e][state] !== undefined)) {
      const action = TABLE[event][state]!;
      it(`${event} → ${action}`, async () => {
        h = await reach(state, event);
        await cause(h, event);
        const t = await h.transitionFor(event, state);
        expect(t.action).toBe(action);
        expect(t.to).toBe(nextState(action, h));
        await expectEffects(h, action, event);
      });
    }

    if (state !== 'Sta1') {
      it('refuses the local primitives the table does not allow here', async () => {
        h = await reach(state, 'Evt15');
        for (const e of LOCAL.filter((e) => TABLE[e][state] === undefined)) {
          await expect(issue(h, e)(), e).rejects.toBeInstanceOf(PrimitiveNotAllowed);
        }
        expect(h.ul.state).toBe(state);
      });
    }
  });
}

describe('the upper layer, as an acceptor, end to end', () => {
  it('accepts, carries P-DATA both ways, and releases: Sta1 → 2 → 3 → 6 → 8 → 13 → 1', async () => {
    h = new Harness('acceptor');
    const x = h;
    x.user = { onAssociateRequest: () => x.ul.accept(AC), onReleaseRequest: () => x.ul.releaseResponse() };
    await x.accept();
    x.send(RQ);
    await x.untilState('Sta6');
    x.send(PEER_BYTES.Evt10!);
    await x.until(() => x.indications.some((i) => i.startsWith('P-DATA')), 'the command');
    x.ul.send(1, true, COMMAND, 0);
    x.send(PEER_BYTES.Evt12!);
    await x.until(() => x.pdus(PduType.ReleaseRp).length === 1, 'A-RELEASE-RP');
    x.peer.end();
    await x.untilState('Sta1');
    expect(x.transitions.map((t) => t.to)).toEqual(['Sta2', 'Sta3', 'Sta6', 'Sta6', 'Sta6', 'Sta8', 'Sta13', 'Sta1']);
    expect(x.received.map((p) => p.type)).toEqual([PduType.AssociateAc, PduType.PData, PduType.ReleaseRp]);
  });

  it('a peer that never sends its A-ASSOCIATE-RQ is closed by ARTIM (Sta2, Evt18 → AA-2)', async () => {
    h = await reach('Sta2', 'Evt18');
    const x = h;
    await x.until(() => x.peerClosed, 'the close', 2000);
    expect(x.transitions.at(-1)).toMatchObject({ from: 'Sta2', event: 'Evt18', action: 'AA-2', to: 'Sta1' });
  });

  it('a P-DATA-TF whose PDV breaks the rules is aborted as an invalid PDU (reason 6)', async () => {
    h = await reach('Sta6', 'Evt10');
    // Message control header 0x04: a reserved bit set (PS3.8 Annex E.2).
    h.send(Buffer.from([0x04, 0, 0, 0, 0, 7, 0, 0, 0, 3, 1, 0x04, 0x00]));
    const t = await h.transitionFor('Evt19', 'Sta6');
    expect(t.action).toBe('AA-8');
    await h.until(() => h!.pdus(PduType.Abort).length === 1, 'the A-ABORT');
    expect(h.pdus(PduType.Abort)[0]!.body[3]).toBe(Abort.Reason.InvalidPduParameterValue);
    expect(h.aborts[0]).toMatchObject({ kind: 'protocol' });
  });
});
