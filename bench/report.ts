import type { MachineFacts } from './machine.js';
import { SYNC_CALLS as SYNC_NAMES } from './fsync-audit.js';
import type { ReceiverKind } from './receivers.js';

export interface Scenario {
  name: string;
  senders: number;
}

export interface RunRecord {
  receiver: ReceiverKind;
  scenario: string;
  senders: number;
  rep: number;
  objects: number;
  bytes: number;
  ok: boolean;
  wallMs?: number;
  imagesPerSec?: number;
  mbPerSec?: number;
  stored?: number;
  idleRssBytes?: number;
  /** User + system CPU seconds the receiver process used while the storescu run lasted. */
  receiverCpuSec?: number;
  peakRssBytes?: number;
  error?: string;
  receiverLog?: string[];
}

export interface Summary {
  receiver: ReceiverKind;
  scenario: string;
  senders: number;
  runs: number;
  okRuns: number;
  imagesPerSec: number | null;
  mbPerSec: number | null;
  wallMs: number | null;
  peakRssBytesMax: number | null;
  peakRssBytesMedian: number | null;
  receiverCpuSec: number | null;
  /** Receiver CPU time ÷ wall time (1.0 = one core busy all along), median over runs. */
  receiverCpuShare: number | null;
  perRunImagesPerSec: number[];
}

export interface AuditResult {
  receiver: ReceiverKind;
  objects: number;
  stored: number;
  calls: Record<string, number>;
  targets: Record<string, Record<string, number>>;
  perObject: number | null;
  error?: string;
}

export interface FloorRun {
  rep: number;
  objects: number;
  ms: number;
  objectsPerSec: number;
}

export interface BenchResult {
  generatedAt: string;
  runtimeSeconds: number;
  machine: MachineFacts;
  study: { template: string; instances: number; bytes: number; templateBytes: number; transferSyntax: string; studyUid: string; seriesUid: string };
  reps: number;
  scenarios: Scenario[];
  runs: RunRecord[];
  summary: Summary[];
  audit: AuditResult[];
  auditObjects: number;
  diskFloor: { runs: FloorRun[]; objectsPerSec: number | null };
}

export function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Medians over the successful runs; a scenario with a failed run still reports its successful ones, and says so. */
export function summarize(runs: RunRecord[], receivers: ReceiverKind[], scenarios: Scenario[]): Summary[] {
  const out: Summary[] = [];
  for (const receiver of receivers) {
    for (const sc of scenarios) {
      const all = runs.filter((r) => r.receiver === receiver && r.scenario === sc.name);
      const ok = all.filter((r) => r.ok);
      const rss = ok.map((r) => r.peakRssBytes!);
      out.push({
        receiver,
        scenario: sc.name,
        senders: sc.senders,
        runs: all.length,
        okRuns: ok.length,
        imagesPerSec: median(ok.map((r) => r.imagesPerSec!)),
        mbPerSec: median(ok.map((r) => r.mbPerSec!)),
        wallMs: median(ok.map((r) => r.wallMs!)),
        peakRssBytesMax: rss.length ? Math.max(...rss) : null,
        peakRssBytesMedian: median(rss),
        receiverCpuSec: median(ok.map((r) => r.receiverCpuSec!)),
        receiverCpuShare: median(ok.map((r) => r.receiverCpuSec! / (r.wallMs! / 1000))),
        perRunImagesPerSec: ok.map((r) => r.imagesPerSec!),
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Markdown

const TARGET_RATIO = 0.45;
const TARGET_RSS_BYTES = 150e6;

const LABEL: Record<ReceiverKind, string> = {
  gateway: 'pacs-edge gateway',
  storescp: 'DCMTK storescp',
  orthanc: 'Orthanc',
  'dcmjs-dimse': 'dcmjs-dimse (as-is)',
};

const f1 = (x: number | null | undefined): string => (x === null || x === undefined ? 'n/a' : x.toFixed(1));
const f2 = (x: number | null | undefined): string => (x === null || x === undefined ? 'n/a' : x.toFixed(2));
const mb = (b: number | null | undefined): string => (b === null || b === undefined ? 'n/a' : (b / 1e6).toFixed(1));

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  return a === null || a === undefined || b === null || b === undefined || b === 0 ? null : a / b;
}

export function renderMarkdown(r: BenchResult): string {
  const m = r.machine;
  const find = (rx: ReceiverKind, senders: number): Summary | undefined => r.summary.find((s) => s.receiver === rx && s.senders === senders);
  const receivers = [...new Set(r.summary.map((s) => s.receiver))];
  const one = r.scenarios.find((s) => s.senders === 1);
  const par = r.scenarios.find((s) => s.senders > 1);
  const perSender = par ? Math.ceil(r.study.instances / par.senders) : 0;
  const auditOf = (rx: ReceiverKind): AuditResult | undefined => r.audit.find((a) => a.receiver === rx);
  const out: string[] = [];

  out.push('# Receive benchmark');
  out.push('');
  out.push(
    `Generated by \`make bench\` (\`node dist/bench/receive-bench.js\`) on ${r.generatedAt}; the whole run took ` +
      `${(r.runtimeSeconds / 60).toFixed(1)} min. Every number below comes from that run; the raw per-run ` +
      'figures are in [benchmarks.json](benchmarks.json). Re-running the bench rewrites both files. Environment knobs: ' +
      '`PACS_EDGE_CORPUS`, `PACS_EDGE_BENCH_REPS`, `PACS_EDGE_BENCH_COUNT`, `PACS_EDGE_BENCH_RECEIVERS`, `PACS_EDGE_BENCH_OUT` ' +
      '(see `bench/receive-bench.ts`).',
  );
  out.push('');

  out.push('## Machine');
  out.push('');
  out.push(
    table(
      ['', ''],
      [
        ['CPUs (`nproc`)', String(m.nproc)],
        ['CPU model', m.cpuModel],
        ['RAM', `${(m.memTotalBytes / 2 ** 30).toFixed(1)} GiB`],
        ['Kernel', m.kernel],
        ['Node.js', m.node],
        ['DCMTK', m.dcmtk],
        ['Orthanc', m.orthanc],
        ['dcmjs-dimse', m.dcmjsDimse],
        ['pacs-edge', m.gateway],
        ['Temp dir (study and all receiver storage)', `\`${m.tmpDir}\` on ${m.tmpFilesystem.type} (\`${m.tmpFilesystem.device}\` mounted at \`${m.tmpFilesystem.mountPoint}\`, ${m.tmpFilesystem.options})`],
      ],
    ),
  );
  out.push('');

  out.push('## Method');
  out.push('');
  out.push(
    `- **Data.** One study of ${r.study.instances} CT instances built from \`${r.study.template}\` ` +
      `(${r.study.templateBytes} bytes, transfer syntax ${r.study.transferSyntax}): every copy gets a new SOP Instance UID, written ` +
      'both in the data set (0008,0018) and in the File Meta (0002,0003), under a new Study and Series Instance UID. The new UIDs have ' +
      'exactly the byte length of the old ones, so no other byte of the file changes. ' +
      `Total ${(r.study.bytes / 1e6).toFixed(1)} MB; MB is 10^6 bytes throughout.`,
  );
  out.push(
    `- **Sender.** DCMTK \`storescu -R -aec <AE> 127.0.0.1 <port> <files…>\` with \`TCP_NODELAY=1\` (\`-R\` proposes only the ` +
      "presentation contexts the files need, in the files' own transfer syntax). Scenarios: " +
      `${one ? `**${one.name}** (one storescu process sending all ${r.study.instances} files)` : ''}` +
      `${par ? ` and **${par.name}** (${par.senders} storescu processes started together, each sending ${perSender} distinct files on its own association)` : ''}. ` +
      'Wall time runs from the start of the first storescu to the exit of the last one, so it includes process start and association ' +
      'set-up and release. images/s = instances / wall time; MB/s = file bytes / wall time.',
  );
  out.push(
    `- **Repetitions.** ${r.reps} repetition(s); within each repetition every receiver runs both scenarios, receivers interleaved. ` +
      'The tables give the **median** over repetitions (the per-run values are listed too). Each scenario gets a freshly started ' +
      'receiver process with empty storage, so its peak RSS is that scenario\'s alone. Before the timed send, every receiver is ' +
      'warmed up with 100 other instances of the same kind (untimed, its own association): the figures are the steady state of a ' +
      'long-running service, not the first seconds of a new process (the gateway\'s JIT compiles its hot paths then). Between runs the receiver\'s storage is ' +
      'deleted and `sync` is run (untimed), so data one receiver left dirty in the page cache is not written back during the next run.',
  );
  out.push(
    '- **Peak RSS.** `VmHWM` of the receiver process from `/proc/<pid>/status`, read after the last response and just before the ' +
      'receiver is stopped; the table gives the largest value over the repetitions. For the gateway and dcmjs-dimse this is the Node.js ' +
      'process (worker threads included), for storescp and Orthanc their single process.',
  );
  out.push(
    '- **Correctness.** After each run the receiver\'s own count must equal the number of instances sent: files in ' +
      '`<spool>/objects/*.dcm` (gateway), files in the output directory (storescp, dcmjs-dimse), `CountInstances` from ' +
      '`GET /statistics` (Orthanc). storescu must exit 0 with no error line. A run that fails either check is excluded from the ' +
      'medians and listed under Problems.',
  );
  out.push('');
  out.push('### Receivers and their durability policy');
  out.push('');
  out.push('The receivers do **not** promise the same thing when they answer C-STORE Success; their defaults differ:');
  out.push('');
  out.push(
    '- **pacs-edge gateway**: `node dist/src/cli/main.js run` with `receive.callers: [{aeTitle: "*"}]`, `spool.minFreeBytes: 64MiB`, ' +
      '`log.level: warn`, everything else default. By design it answers Success only once the object is durable: the object ' +
      'file and its directory entry are flushed and the spool index entry is written (`src/spool/level-spool.ts`, ' +
      '`src/spool/file-writer.ts`); the flush audit below shows the calls it actually made in this run.',
  );
  out.push(
    '- **DCMTK storescp**: `storescp -od <dir> +B -pm +xa <port>` (bit-preserving, promiscuous, all transfer syntaxes), with `--fork` ' +
      'in the parallel scenario (one process per association, so the senders are served at the same time, as a PACS serves several modalities). It writes ' +
      'each file and answers without any fsync: the data can still be only in the page cache when the modality is told Success. ' +
      'Its CPU is summed over the processes it forked (reaped or not, from /proc); with `--fork` its peak RSS is the parent\'s alone (each child is about as large, one per sender).',
  );
  out.push(
    '- **Orthanc**: `Orthanc <config.json>` with storage and index in the temp dir, `DicomAet ORTHANC`, `DicomCheckCalledAet false`, ' +
      '`DicomAlwaysAllowStore true`, `RemoteAccessAllowed false`, `AuthenticationEnabled false`, no plugins; all other options at ' +
      "their built-in defaults (for Orthanc 1.10 that includes `SyncStorageArea: true`, a flush of each stored file). Each instance " +
      'is also recorded in its SQLite index database (what of this is flushed before Success is in the audit below). The bench waits for `GET /system` and a C-ECHO before sending.',
  );
  out.push(
    `- **dcmjs-dimse ${m.dcmjsDimse} as-is** (\`bench/dcmjs-dimse-scp.ts\`, a child Node.js process): an \`Scp\` subclass written ` +
      'as the library README shows. The library\'s default C-STORE path accumulates the whole data set in a memory stream, parses ' +
      'it into a dcmjs `Dataset`; the handler saves it with `Dataset.toFile` (re-encoded by dcmjs, `fs.writeFile`, no fsync) and ' +
      'then answers Success. It accepts Implicit/Explicit VR Little Endian only. dcmjs prints a warning line per group-length ' +
      'element it meets; that is left as the library does it.',
  );
  out.push('');
  if (r.audit.length) {
    out.push(
      `**Measured flush calls.** To check these policies rather than assume them, a separate untimed pass attaches ` +
        `\`strace -f -y\` (${m.strace ?? 'strace'}) to each freshly started receiver while one storescu sends ${r.auditObjects} ` +
        `instances, and records every ${SYNC_NAMES.map((c) => `\`${c}\``).join(', ')} call and the file it was made on ` +
        '(paths relative to the receiver\'s directory, hexadecimal names shown as `*`, directories with a trailing `/`):',
    );
    out.push('');
    out.push(
      table(
        ['Receiver', 'flush calls per object', 'calls per object, by target', 'note'],
        r.audit.map((a) => {
          const per = Object.entries(a.targets)
            .flatMap(([target, calls]) => Object.entries(calls).map(([call, n]) => `\`${call}\` on \`${target}\`: ${f2(n / a.objects)}`))
            .join('<br>');
          const note = a.error ?? (a.stored === a.objects ? '' : `stored ${a.stored}/${a.objects}`);
          return [LABEL[a.receiver], f2(a.perObject), per || 'none', note];
        }),
      ),
    );
    out.push('');
  }

  out.push('## Results');
  out.push('');
  out.push(
    table(
      ['Receiver', 'Scenario', 'images/s', 'MB/s', 'wall time (s)', 'peak RSS (MB)', 'receiver CPU (s)', 'receiver CPU ÷ wall', 'runs ok', 'images/s per run'],
      r.summary.map((s) => [
        LABEL[s.receiver],
        s.scenario,
        f1(s.imagesPerSec),
        f1(s.mbPerSec),
        s.wallMs === null ? 'n/a' : (s.wallMs / 1000).toFixed(2),
        mb(s.peakRssBytesMax),
        f2(s.receiverCpuSec),
        f2(s.receiverCpuShare),
        `${s.okRuns}/${s.runs}`,
        s.perRunImagesPerSec.map((x) => x.toFixed(1)).join(', '),
      ]),
    ),
  );
  out.push('');

  out.push('### Ratios (gateway images/s ÷ other receiver images/s, medians)');
  out.push('');
  const others = receivers.filter((x) => x !== 'gateway');
  out.push(
    table(
      ['Scenario', ...others.map((o) => `gateway / ${LABEL[o]}`)],
      r.scenarios.map((sc) => [sc.name, ...others.map((o) => f2(ratio(find('gateway', sc.senders)?.imagesPerSec, find(o, sc.senders)?.imagesPerSec)))]),
    ),
  );
  out.push('');

  out.push('### Disk floor for a durable store');
  out.push('');
  {
    const fl = r.diskFloor;
    const gw = one && find('gateway', one.senders);
    out.push(
      `For context, without any DICOM: a sequential loop that creates a file, writes one instance's bytes, fsyncs the file and then ` +
        `fsyncs its directory (\`bench/disk-probe.ts\`, ${fl.runs[0]?.objects ?? 0} objects, once per repetition before the receivers) ` +
        `reached a median of **${f1(fl.objectsPerSec)} objects/s** on this filesystem (per repetition: ` +
        `${fl.runs.map((x) => x.objectsPerSec.toFixed(1)).join(', ')}). That is the order of magnitude available to a receiver that ` +
        'answers each C-STORE of one association only once the object is durable; it is a reference, not a hard ceiling (the ' +
        'per-repetition spread shows how much this disk\'s flush latency moves, and a receiver can overlap its flushes). ' +
        `The gateway's single-association median is ${f2(ratio(gw?.imagesPerSec, fl.objectsPerSec))}× the loop's median, its process ` +
        `busy ${f2(gw?.receiverCpuShare)} core-seconds per second of wall time (${m.nproc} CPU(s), shared with storescu); storescp, ` +
        `which does not flush, reached ${f2(ratio(one && find('storescp', one.senders)?.imagesPerSec, fl.objectsPerSec))}× it.`,
    );
  }
  out.push('');

  out.push('## Targets');
  out.push('');
  const gw1 = one && find('gateway', one.senders);
  const sc1 = one && find('storescp', one.senders);
  const gwPar = par && find('gateway', par.senders);
  const scPar = par && find('storescp', par.senders);
  const r1 = ratio(gw1?.imagesPerSec, sc1?.imagesPerSec);
  const gwAudit = auditOf('gateway');
  const fsyncSeen = gwAudit?.perObject ?? null;
  const rows: string[][] = [];
  {
    const measured =
      `${f1(gw1?.imagesPerSec)} vs ${f1(sc1?.imagesPerSec)} images/s = **${f2(r1)}×**` +
      (fsyncSeen === null ? ' (fsync not audited)' : `; gateway made ${f2(fsyncSeen)} flush calls per object`);
    const pass = r1 !== null && r1 >= TARGET_RATIO && (fsyncSeen === null || fsyncSeen >= 1);
    rows.push([`gateway ≥ ${TARGET_RATIO}× storescp's images/s with fsync-before-success, one association`, measured, r1 === null ? 'n/a' : pass ? 'PASS' : 'FAIL']);
  }
  {
    const gwRuns = r.summary.filter((s) => s.receiver === 'gateway' && s.peakRssBytesMax !== null);
    const peak = gwRuns.length ? Math.max(...gwRuns.map((s) => s.peakRssBytesMax!)) : null;
    const detail = gwRuns.map((s) => `${s.scenario}: ${mb(s.peakRssBytesMax)} MB`).join('; ');
    rows.push([`gateway peak RSS ≤ ${TARGET_RSS_BYTES / 1e6} MB`, `max **${mb(peak)} MB** (${detail})`, peak === null ? 'n/a' : peak <= TARGET_RSS_BYTES ? 'PASS' : 'FAIL']);
  }
  if (par) {
    const rp = ratio(gwPar?.imagesPerSec, scPar?.imagesPerSec);
    const complete = gwPar !== undefined && gwPar.okRuns === gwPar.runs && gwPar.runs > 0;
    rows.push([
      `the figure with ${par.senders} parallel senders (reported)`,
      `gateway **${f1(gwPar?.imagesPerSec)} images/s**, ${f1(gwPar?.mbPerSec)} MB/s (${gwPar?.okRuns ?? 0}/${gwPar?.runs ?? 0} runs complete); ` +
        `${f2(rp)}× storescp (${rp === null ? 'n/a' : rp >= TARGET_RATIO ? 'also' : 'not'} above the ${TARGET_RATIO}× line)`,
      complete ? 'PASS' : 'FAIL',
    ]);
  }
  out.push(table(['Target (from the issue)', 'Measured', 'Result'], rows));
  out.push('');
  {
    const need = sc1?.imagesPerSec === null || sc1?.imagesPerSec === undefined ? null : sc1.imagesPerSec * TARGET_RATIO;
    out.push(
      `On this machine the first target means ${f1(need)} images/s on one association (${TARGET_RATIO}× storescp's median), ` +
        `${f2(ratio(need, r.diskFloor.objectsPerSec))}× the median of the durable-write reference loop above ` +
        `(${f1(r.diskFloor.objectsPerSec)} objects/s).`,
    );
    out.push('');
  }
  if (par) {
    out.push(
      `The third target asks for the figure to be reported, not for a threshold: it passes when every ${par.name} run of the gateway ` +
        `stored all ${r.study.instances} instances. Its ratio to storescp is shown against the ${TARGET_RATIO}× line for information only.`,
    );
    out.push('');
  }

  out.push('## Problems');
  out.push('');
  const failed = r.runs.filter((x) => !x.ok);
  const logged = r.runs.filter((x) => x.receiverLog?.length);
  if (failed.length === 0 && logged.length === 0 && r.audit.every((a) => !a.error)) {
    out.push('None: every run completed with all instances stored, and no receiver logged a warning or an error.');
  } else {
    for (const x of failed) out.push(`- ${LABEL[x.receiver]}, ${x.scenario}, repetition ${x.rep}: ${x.error}`);
    for (const a of r.audit.filter((y) => y.error)) out.push(`- flush audit of ${LABEL[a.receiver]}: ${a.error}`);
    const byLine = new Map<string, number>();
    for (const x of logged) {
      for (const l of x.receiverLog!) {
        let key = l;
        try {
          const j = JSON.parse(l) as { level?: string; msg?: string };
          key = `${j.level}: ${j.msg}`;
        } catch {
          /* plain text line */
        }
        key = `${LABEL[x.receiver]}: ${key}`;
        byLine.set(key, (byLine.get(key) ?? 0) + 1);
      }
    }
    for (const [k, n] of byLine) {
      const expected = k.includes('accepts any calling AE title') ? ' — expected: the bench configuration uses the wildcard caller' : '';
      out.push(`- receiver log, ${n} line(s): \`${k.replace(/`/g, "'")}\`${expected}`);
    }
  }
  out.push('');
  return out.join('\n');
}
