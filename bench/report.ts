import type { MachineFacts } from './machine.js';
import { SYNC_CALLS as SYNC_NAMES } from './fsync-audit.js';
import { atLeastRatio, atMostRatio, mdTable as table, median, ratio, reported, type TargetRow } from './targets.js';

export { median };

export interface Scenario {
  name: string;
  senders: number;
}

/** One receiver configuration of the receive bench (the gateway appears several times: normal, AES masked…). */
export interface Variant {
  id: string;
  label: string;
  /** Scenario names it runs (the masked variants run the one-association scenario only). */
  scenarios: string[];
}

export interface RunRecord {
  receiver: string;
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
  receiver: string;
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
  /** Receiver CPU milliseconds per image (process tree, /proc), median over runs. */
  cpuMsPerImage: number | null;
  perRunImagesPerSec: number[];
  perRunCpuMsPerImage: number[];
}

export interface AuditResult {
  receiver: string;
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
  variants: Variant[];
  warmupObjects: number;
  /** OPENSSL_ia32cap value of the masked variants. */
  aesMask: string;
  /** Whether this build has the chacha20-poly1305 spool profile (a masked row with it is then run). */
  chacha20: boolean;
  study: { template: string; instances: number; bytes: number; templateBytes: number; transferSyntax: string; studyUid: string; seriesUid: string };
  reps: number;
  scenarios: Scenario[];
  runs: RunRecord[];
  summary: Summary[];
  audit: AuditResult[];
  auditObjects: number;
  diskFloor: { runs: FloorRun[]; objectsPerSec: number | null };
}

/** Medians over the successful runs; a scenario with a failed run still reports its successful ones, and says so. */
export function summarize(runs: RunRecord[], variants: Variant[], scenarios: Scenario[]): Summary[] {
  const out: Summary[] = [];
  for (const v of variants) {
    const receiver = v.id;
    for (const sc of scenarios.filter((x) => v.scenarios.includes(x.name))) {
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
        cpuMsPerImage: median(ok.map((r) => (r.receiverCpuSec! * 1000) / r.objects)),
        perRunImagesPerSec: ok.map((r) => r.imagesPerSec!),
        perRunCpuMsPerImage: ok.map((r) => (r.receiverCpuSec! * 1000) / r.objects),
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Markdown

const f1 = (x: number | null | undefined): string => (x === null || x === undefined ? 'n/a' : x.toFixed(1));
const f2 = (x: number | null | undefined): string => (x === null || x === undefined ? 'n/a' : x.toFixed(2));
const mb = (b: number | null | undefined): string => (b === null || b === undefined ? 'n/a' : (b / 1e6).toFixed(1));



export const TARGET_ONE_ASSOC = 0.6;
export const TARGET_CPU_PER_IMAGE = 2;
export const TARGET_PARALLEL = 1.0;

/** The receive (ingest) section of docs/benchmarks.md. */
export function renderReceiveSection(r: BenchResult): string {
  const m = r.machine;
  const label = (id: string): string => r.variants.find((v) => v.id === id)?.label ?? id;
  const find = (id: string, senders: number): Summary | undefined => r.summary.find((s) => s.receiver === id && s.senders === senders);
  const one = r.scenarios.find((s) => s.senders === 1);
  const par = r.scenarios.find((s) => s.senders > 1);
  const perSender = par ? Math.ceil(r.study.instances / par.senders) : 0;
  const has = (id: string): boolean => r.variants.some((v) => v.id === id);
  const out: string[] = [];

  out.push('## Receive (ingest)');
  out.push('');
  out.push('### Method');
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
    `- **Repetitions.** ${r.reps} repetition(s); within each repetition every receiver runs its scenarios, receivers interleaved. ` +
      'The tables give the **median** over repetitions (the per-run values are listed too). Each scenario gets a freshly started ' +
      "receiver process with empty storage, so its peak RSS is that scenario's alone. Before the timed send, every receiver is " +
      `warmed up with ${r.warmupObjects} other instances of the same kind (untimed, its own association): the figures are the steady state of a ` +
      "long-running service, not the first seconds of a new process (the gateway's JIT compiles its hot paths then). Between runs the receiver's storage is " +
      'deleted and `sync` is run (untimed), so data one receiver left dirty in the page cache is not written back during the next run.',
  );
  out.push(
    '- **CPU.** User + system CPU seconds of the receiver process from `/proc/<pid>/stat`, read before and after the timed send, ' +
      'summed over the processes it forked (storescp `--fork`: own, reaped and live children), all threads included (the gateway\'s ' +
      'workers). CPU per image = that ÷ instances; both receivers are measured in the same run, on the same 2 cores as storescu.',
  );
  out.push(
    '- **Peak RSS.** `VmHWM` of the receiver process from `/proc/<pid>/status`, read after the last response and just before the ' +
      'receiver is stopped; the table gives the largest value over the repetitions. For the gateway this is the Node.js ' +
      "process (worker threads included); with `--fork` storescp's peak RSS is the parent's alone.",
  );
  out.push(
    "- **Correctness.** After each run the receiver's own count must equal the number of instances sent: files in " +
      '`<spool>/objects/*.dcm` (gateway), files in the output directory (storescp, dcmjs-dimse), `CountInstances` from ' +
      '`GET /statistics` (Orthanc). storescu must exit 0 with no error line. A run that fails either check is excluded from the ' +
      'medians and listed under Problems.',
  );
  out.push('');
  out.push('The receivers do **not** promise the same thing when they answer C-STORE Success:');
  out.push('');
  out.push(
    '- **pacs-edge gateway**: `node dist/src/cli/main.js run` with `receive.callers: [{aeTitle: "*"}]`, ' +
      '`spool: {minFreeBytes: 64MiB, encryption: {profile: aes-256-gcm}}` (the default profile, written out so the bench cannot lose it: ' +
      'every object is sealed with AES-256-GCM in the spool), `log.level: warn`, no destination, everything else default. It answers ' +
      'Success only once the object is durable: the object file and its directory entry are flushed and the spool index entry is ' +
      'written; the flush audit below shows the calls it actually made in this run.',
  );
  if (has('gateway-aes-masked') || has('gateway-chacha-masked')) {
    out.push(
      `- **gateway, AES masked**: the same gateway with \`OPENSSL_ia32cap='${r.aesMask}'\` in its environment: OpenSSL then uses ` +
        'neither AES-NI, PCLMULQDQ nor the SHA extensions (as on a board without ARMv8 crypto extensions, e.g. a Raspberry Pi 4), ' +
        'so AES-GCM and SHA-256 run in plain software. One association only.' +
        (r.chacha20 ? ' The **chacha20-poly1305** row is the same masked gateway with `spool.encryption.profile: chacha20-poly1305`.' : ' (This build has no chacha20-poly1305 profile: no row with it.)'),
    );
  }
  out.push(
    '- **DCMTK storescp**: `storescp -od <dir> +B -pm +xa <port>` (bit-preserving, promiscuous, all transfer syntaxes), with `--fork` ' +
      'in the parallel scenario (one process per association, so the senders are served at the same time, as a PACS serves several modalities). It writes ' +
      'each file and answers without any fsync: the data can still be only in the page cache when the modality is told Success.',
  );
  if (has('orthanc')) {
    out.push(
      '- **Orthanc**: `Orthanc <config.json>` with storage and index in the temp dir, no plugins, all other options at their ' +
        "built-in defaults (for Orthanc 1.10 that includes `SyncStorageArea: true`, a flush of each stored file) and an SQLite index.",
    );
  }
  if (has('dcmjs-dimse')) {
    out.push(
      `- **dcmjs-dimse ${m.dcmjsDimse} as-is** (\`bench/dcmjs-dimse-scp.ts\`, a child Node.js process): an \`Scp\` subclass written ` +
        'as the library README shows: the data set accumulated in memory, parsed, re-encoded by dcmjs and written with `fs.writeFile`, no fsync.',
    );
  }
  out.push('');
  if (r.audit.length) {
    out.push(
      `**Measured flush calls.** A separate untimed pass attaches \`strace -f -y\` (${m.strace ?? 'strace'}) to each freshly started ` +
        `receiver while one storescu sends ${r.auditObjects} instances, and records every ${SYNC_NAMES.map((c) => `\`${c}\``).join(', ')} call ` +
        "and the file it was made on (paths relative to the receiver's directory, hexadecimal names shown as `*`):",
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
          return [label(a.receiver), f2(a.perObject), per || 'none', note];
        }),
      ),
    );
    out.push('');
  }

  out.push('### Results');
  out.push('');
  out.push(
    table(
      ['Receiver', 'Scenario', 'images/s', 'MB/s', 'wall time (s)', 'CPU ms per image', 'receiver CPU ÷ wall', 'peak RSS (MB)', 'runs ok', 'images/s per run', 'CPU ms/image per run'],
      r.summary.map((s) => [
        label(s.receiver),
        s.scenario,
        f1(s.imagesPerSec),
        f1(s.mbPerSec),
        s.wallMs === null ? 'n/a' : (s.wallMs / 1000).toFixed(2),
        f2(s.cpuMsPerImage),
        f2(s.receiverCpuShare),
        mb(s.peakRssBytesMax),
        `${s.okRuns}/${s.runs}`,
        s.perRunImagesPerSec.map((x) => x.toFixed(1)).join(', '),
        s.perRunCpuMsPerImage.map((x) => x.toFixed(2)).join(', '),
      ]),
    ),
  );
  out.push('');
  out.push('Ratios of the medians, gateway variant ÷ storescp in the same scenario:');
  out.push('');
  const gws = r.variants.filter((v) => v.id.startsWith('gateway'));
  out.push(
    table(
      ['Gateway', 'Scenario', 'images/s ÷ storescp', 'CPU per image ÷ storescp'],
      gws.flatMap((g) =>
        r.scenarios
          .filter((sc) => g.scenarios.includes(sc.name))
          .map((sc) => [g.label, sc.name, f2(ratio(find(g.id, sc.senders)?.imagesPerSec, find('storescp', sc.senders)?.imagesPerSec)), f2(ratio(find(g.id, sc.senders)?.cpuMsPerImage, find('storescp', sc.senders)?.cpuMsPerImage))]),
      ),
    ),
  );
  out.push('');
  {
    const fl = r.diskFloor;
    out.push(
      `**Disk floor.** Without any DICOM, a sequential loop that creates a file, writes one instance's bytes, fsyncs the file and ` +
        `its directory (\`bench/disk-probe.ts\`, ${fl.runs[0]?.objects ?? 0} objects, once per repetition) reached a median of ` +
        `**${f1(fl.objectsPerSec)} objects/s** (per repetition: ${fl.runs.map((x) => x.objectsPerSec.toFixed(1)).join(', ')}): the order of ` +
        'magnitude available to a receiver that answers each C-STORE of one association only once the object is durable.' +
        (one ? ` The gateway's one-association median is ${f2(ratio(find('gateway', one.senders)?.imagesPerSec, fl.objectsPerSec))}× it.` : ''),
    );
    out.push('');
  }

  out.push('### Problems');
  out.push('');
  const failed = r.runs.filter((x) => !x.ok);
  const logged = r.runs.filter((x) => x.receiverLog?.length);
  if (failed.length === 0 && logged.length === 0 && r.audit.every((a) => !a.error)) {
    out.push('None: every run completed with all instances stored, and no receiver logged a warning or an error.');
  } else {
    for (const x of failed) out.push(`- ${label(x.receiver)}, ${x.scenario}, repetition ${x.rep}: ${x.error}`);
    for (const a of r.audit.filter((y) => y.error)) out.push(`- flush audit of ${label(a.receiver)}: ${a.error}`);
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
        key = `${label(x.receiver)}: ${key}`;
        byLine.set(key, (byLine.get(key) ?? 0) + 1);
      }
    }
    for (const [k, n] of byLine) {
      // The bench's own configuration: wildcard caller, plain loopback listener, control socket in a private temp dir.
      const expected = /accepts any calling AE title|plain DICOM listener|control sockets/i.test(k) ? ' — expected with the bench configuration' : '';
      out.push(`- receiver log, ${n} line(s): \`${k.replace(/`/g, "'")}\`${expected}`);
    }
  }
  out.push('');
  return out.join('\n');
}

/** Issue 17's ingest targets, computed from the medians of this run. */
export function receiveTargets(r: BenchResult): TargetRow[] {
  const find = (id: string, senders: number): Summary | undefined => r.summary.find((s) => s.receiver === id && s.senders === senders);
  const one = r.scenarios.find((s) => s.senders === 1);
  const par = r.scenarios.find((s) => s.senders > 1);
  const rows: TargetRow[] = [];
  const gw1 = one && find('gateway', one.senders);
  const sc1 = one && find('storescp', one.senders);
  const runsNote = (s: Summary | undefined): string => (s ? `; ${s.okRuns}/${s.runs} runs ok` : '; not run');
  const audit = r.audit.find((a) => a.receiver === 'gateway');
  {
    const row = atLeastRatio(`Ingest, 1 association, encryption on (aes-256-gcm), fsync before Success: ≥ ${TARGET_ONE_ASSOC}× storescp images/s`, gw1?.imagesPerSec ?? null, sc1?.imagesPerSec ?? null, TARGET_ONE_ASSOC, 'images/s');
    row.measured += runsNote(gw1);
    if (audit?.perObject !== null && audit?.perObject !== undefined) {
      row.measured += `; gateway made ${f2(audit.perObject)} flush calls per object`;
      if (audit.perObject < 1) row.pass = false;
    }
    rows.push(row);
  }
  rows.push(atMostRatio(`Gateway CPU per image ≤ ${TARGET_CPU_PER_IMAGE}× storescp's (1 association, same run)`, gw1?.cpuMsPerImage ?? null, sc1?.cpuMsPerImage ?? null, TARGET_CPU_PER_IMAGE, 'ms CPU/image'));
  if (par) {
    const g = find('gateway', par.senders);
    const s = find('storescp', par.senders);
    const row = atLeastRatio(`Ingest, ${par.senders} parallel senders: ≥ ${TARGET_PARALLEL.toFixed(1)}× storescp --fork images/s`, g?.imagesPerSec ?? null, s?.imagesPerSec ?? null, TARGET_PARALLEL, 'images/s');
    row.measured += runsNote(g);
    rows.push(row);
  }
  for (const id of ['gateway-aes-masked', 'gateway-chacha-masked']) {
    const v = r.variants.find((x) => x.id === id);
    const g = one && find(id, one.senders);
    if (!v || !g) continue;
    rows.push(
      reported(
        `${v.label}, 1 association`,
        `${f1(g.imagesPerSec)} images/s = **${f2(ratio(g.imagesPerSec, sc1?.imagesPerSec))}×** storescp (unmasked gateway ${f2(ratio(gw1?.imagesPerSec, sc1?.imagesPerSec))}×); ` +
          `CPU ${f2(g.cpuMsPerImage)} ms/image = **${f2(ratio(g.cpuMsPerImage, sc1?.cpuMsPerImage))}×** storescp's (unmasked ${f2(ratio(gw1?.cpuMsPerImage, sc1?.cpuMsPerImage))}×)${runsNote(g)}`,
      ),
    );
  }
  const gwAll = r.summary.filter((s) => s.receiver === 'gateway' && s.peakRssBytesMax !== null);
  if (gwAll.length) rows.push(reported('Gateway peak RSS while ingesting (no compression running)', gwAll.map((s) => `${s.scenario}: ${mb(s.peakRssBytesMax)} MB`).join('; ')));
  return rows;
}
