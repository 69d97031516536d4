#!/usr/bin/env bash
# make arm-smoke: the arm64 Debian package (make package ARCHES=arm64) — its contents, not the
# development tree: its own Node 24 runtime, its compiled gateway, its production dependencies —
# under QEMU user-mode emulation, 50 instances modality (storescu) -> gateway -> PACS (storescp),
# JPEG-LS on the way out, with the installation integrity check enforced on the package's manifest.
#
# Proves on arm64: the LevelDB binding (the package's only native addon, classic-level's
# linux-arm64 prebuild, checked to be the addon the process mapped), the WebAssembly CharLS codec
# on the worker threads (at rest while the PACS is down, per destination while it is up) and the
# spool. Run by `make arm-smoke` (which builds the package and installs qemu-user-static and the
# arm64 C/C++ runtime when missing) and by .ci/run.
#
# Needs: ARM_DEB (the .deb), qemu-aarch64-static, /usr/aarch64-linux-gnu (libc6-arm64-cross,
# libstdc++6-arm64-cross), dpkg-deb, DCMTK (storescu, storescp, echoscu, dump2dcm, dcmdump,
# dcmdjpls), a built dist/ and the host node (the status reads of the script).
# Loopback only; everything lives in a temporary directory that is removed afterwards (kept, and
# its logs printed, when a check fails; kept also with ARM_SMOKE_KEEP=1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# The whole run is bounded: re-run this script under `timeout` once.
if [ -z "${ARM_SMOKE_BOUNDED:-}" ]; then
  export ARM_SMOKE_BOUNDED=1
  exec timeout --kill-after=15 "${ARM_SMOKE_TIMEOUT:-270}" bash "$0" "$@"
fi

N=50                     # instances in all: the first half while the PACS is down, the rest while it is up
HALF=$((N / 2))
QEMU=qemu-aarch64-static
SYSROOT=/usr/aarch64-linux-gnu
ARM_DEB=${ARM_DEB:?ARM_DEB must name the arm64 .deb (make arm-smoke builds it)}
TS_JLS=1.2.840.10008.1.2.4.80

t0=$(date +%s.%N)
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "arm-smoke: $*"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pacs-edge-arm-smoke.XXXXXX")
GW_PID='' SCP_PID='' OK=0
cleanup() {
  local rc=$?
  set +e
  [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null && kill -KILL "$GW_PID" 2>/dev/null
  [ -n "$SCP_PID" ] && kill -0 "$SCP_PID" 2>/dev/null && kill -TERM "$SCP_PID" 2>/dev/null
  if [ "$OK" = 1 ] && [ -z "${ARM_SMOKE_KEEP:-}" ]; then
    rm -rf "$WORK"
  elif [ "$OK" = 1 ]; then
    echo "arm-smoke: ARM_SMOKE_KEEP is set: files kept in $WORK"
  else
    echo "arm-smoke: FAILED (exit $rc); logs kept in $WORK" >&2
    for f in gateway.log storescp.log storescu-1.log storescu-2.log; do
      [ -s "$WORK/$f" ] && { echo "--- $f (last 40 lines)" >&2; tail -n 40 "$WORK/$f" >&2; }
    done
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
fail() { echo "arm-smoke: FAIL: $*" >&2; exit 1; }

# --- tools ---------------------------------------------------------------------------------
for t in "$QEMU" storescu storescp echoscu dump2dcm dcmdump dcmdjpls file; do
  command -v "$t" >/dev/null || fail "$t is missing (make arm-smoke installs qemu-user-static, the arm64 runtime and DCMTK)"
done
[ -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ] || fail "$SYSROOT/lib/ld-linux-aarch64.so.1 is missing (apt-get install libc6-arm64-cross)"
[ -e "$SYSROOT/lib/libstdc++.so.6" ] || fail "$SYSROOT/lib/libstdc++.so.6 is missing (apt-get install libstdc++6-arm64-cross)"
[ -f dist/src/cli/main.js ] || fail "dist/ is not built (make build)"
[ -f "$ARM_DEB" ] || fail "$ARM_DEB does not exist (make package ARCHES=arm64)"

# --- the package's contents: what dpkg would install ---------------------------------------------
dpkg-deb -I "$ARM_DEB" | grep 'Architecture: arm64' >/dev/null || fail "$ARM_DEB is not an arm64 package"
dpkg-deb -x "$ARM_DEB" "$WORK/root"
PKG_LIB="$WORK/root/usr/lib/pacs-edge"
ARM_NODE="$PKG_LIB/node/bin/node"
GW_MAIN="$PKG_LIB/dist/src/cli/main.js"
file -L "$ARM_NODE" | grep 'ARM aarch64' >/dev/null || fail "the package's runtime $ARM_NODE is not an aarch64 binary: $(file -L "$ARM_NODE")"
arm() { "$QEMU" -L "$SYSROOT" "$ARM_NODE" "$@"; }
a=$(now)
ARM_INFO=$(timeout 60 "$QEMU" -L "$SYSROOT" "$ARM_NODE" -p 'process.version + " " + process.platform + "-" + process.arch')
T_NODE=$(secs "$a" "$(now)")
case "$ARM_INFO" in *linux-arm64) ;; *) fail "emulated node reports $ARM_INFO, expected linux-arm64" ;; esac
case "$ARM_INFO" in v24.*) ;; *) fail "emulated node is $ARM_INFO, expected Node 24" ;; esac
say "node $ARM_INFO under $QEMU ($(${QEMU} --version | head -n1)): 'node -p' took ${T_NODE} s"

# --- classic-level ships a linux-arm64 prebuild ---------------------------------------------
CL_DIR="$PKG_LIB/node_modules/classic-level"
CL_VERSION=$(node -p 'require(process.argv[1]).version' "$CL_DIR/package.json")
mapfile -t CL_ARM < <(find "$CL_DIR/prebuilds/linux-arm64" -name '*.node' 2>/dev/null)
[ "${#CL_ARM[@]}" -ge 1 ] || fail "the package's classic-level $CL_VERSION has no prebuilds/linux-arm64/*.node"
OTHER=$(find "$PKG_LIB" -name '*.node' | grep -v "/prebuilds/linux-arm64/" || true)
[ -z "$OTHER" ] || fail "the arm64 package ships other native addons: $OTHER"
for f in "${CL_ARM[@]}"; do
  file -L "$f" | grep 'ARM aarch64' >/dev/null || fail "$f is not an aarch64 object: $(file -L "$f")"
done
say "package $(basename "$ARM_DEB"): classic-level $CL_VERSION linux-arm64 prebuild(s): ${CL_ARM[*]#"$WORK/root"}"
PKG_VERSION_LINE=$(timeout 60 "$QEMU" -L "$SYSROOT" "$ARM_NODE" "$GW_MAIN" --version)
case "$PKG_VERSION_LINE" in "pacs-edge "*" (node 24."*")") ;; *) fail "the package's pacs-edge --version says: $PKG_VERSION_LINE" ;; esac
say "$PKG_VERSION_LINE, under emulation"

# --- two free loopback ports ------------------------------------------------------------------
read -r GW_PORT PACS_PORT < <(node -e '
  const net = require("node:net");
  const one = () => new Promise((r) => { const s = net.createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => r(p)); }); });
  (async () => { const a = await one(); let b; do b = await one(); while (b === a); console.log(a, b); })();')

# --- 50 instances: one CT study, distinct SOP Instance UIDs and pixel data, made by DCMTK -------
# The host node writes the UIDs (2.25 + a random UUID) and the 16-bit pixel data (a gradient plus
# noise, 12 bits stored); dump2dcm builds each DICOM file from a text dump.
mkdir -p "$WORK/in" "$WORK/raw" "$WORK/pacs" "$WORK/check"
node - "$WORK" "$N" <<'EOF'
const fs = require('node:fs');
const { randomUUID } = require('node:crypto');
const [work, n] = [process.argv[2], Number(process.argv[3])];
const uid = () => `2.25.${BigInt('0x' + randomUUID().replace(/-/g, ''))}`;
const study = uid(), series = uid();
const rows = 256, cols = 256;
let seed = 12345;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
const uids = [];
for (let i = 1; i <= n; i++) {
  const px = Buffer.alloc(rows * cols * 2);
  for (let y = 0; y < rows; y++) for (let x = 0; x < cols; x++) {
    const r = Math.hypot(x - 128, y - 128);
    px.writeUInt16LE(Math.min(4095, Math.round(2000 + 1500 * Math.cos(r / 12 + i / 5)) + (rnd() & 63)), (y * cols + x) * 2);
  }
  const name = String(i).padStart(3, '0');
  fs.writeFileSync(`${work}/raw/${name}.raw`, px);
  const sop = uid();
  uids.push(sop);
  fs.writeFileSync(`${work}/in/${name}.dump`, [
    '(0008,0016) UI =CTImageStorage',
    `(0008,0018) UI [${sop}]`,
    '(0008,0020) DA [20240102]',
    '(0008,0060) CS [CT]',
    '(0010,0010) PN [ARM^SMOKE]',
    '(0010,0020) LO [ARMSMOKE01]',
    `(0020,000d) UI [${study}]`,
    `(0020,000e) UI [${series}]`,
    '(0020,0011) IS [1]',
    `(0020,0013) IS [${i}]`,
    '(0028,0002) US 1',
    '(0028,0004) CS [MONOCHROME2]',
    `(0028,0010) US ${rows}`,
    `(0028,0011) US ${cols}`,
    '(0028,0100) US 16',
    '(0028,0101) US 12',
    '(0028,0102) US 11',
    '(0028,0103) US 0',
    '(0028,1052) DS [-1024]',
    '(0028,1053) DS [1]',
    `(7fe0,0010) OW =${work}/raw/${name}.raw`,
  ].join('\n') + '\n');
}
fs.writeFileSync(`${work}/uids.sent`, uids.sort().join('\n') + '\n');
EOF
for d in "$WORK"/in/*.dump; do
  dump2dcm -q "$d" "${d%.dump}.dcm"
done
mapfile -t FILES < <(ls "$WORK"/in/*.dcm)
[ "${#FILES[@]}" = "$N" ] || fail "made ${#FILES[@]} instances, expected $N"

# --- configuration: loopback only, one destination (storescp), JPEG-LS, compression at rest --------
CFG="$WORK/gateway.yaml"
cat > "$CFG" <<EOF
# arm-smoke: temporary configuration
device:
  id: arm-smoke
receive:
  aeTitle: PACS_EDGE
  host: 127.0.0.1
  port: $GW_PORT
  callers:
    - aeTitle: ARMSMOKE
      host: 127.0.0.1
spool:
  dir: $WORK/spool
  minFreeBytes: 64MiB
  compressAtRest: true
forward:
  - name: pacs
    aeTitle: PACS
    host: 127.0.0.1
    port: $PACS_PORT
    compression: jpeg-ls
forwarding:
  connectTimeoutSeconds: 5
  retryBaseSeconds: 1
  retryMaxSeconds: 2
  maxAttempts: 1000
log:
  level: info
security:
  integrity: enforce
EOF
node dist/src/cli/main.js check-config --config "$CFG" >/dev/null || fail "the generated configuration is not valid"

# The emulated process reports its runtime when it starts and the native addons it loaded when it
# exits (lines on stderr, in the gateway's log).
PROBE="$WORK/arch-probe.cjs"
cat > "$PROBE" <<'EOF'
const { isMainThread } = require('node:worker_threads');
if (isMainThread) {
  const line = (o) => process.stderr.write(`arm-smoke-probe ${JSON.stringify(o)}\n`);
  line({ at: 'start', arch: process.arch, platform: process.platform, version: process.version, pid: process.pid });
  process.on('exit', (code) => line({ at: 'exit', code, addons: Object.keys(require.cache).filter((f) => f.endsWith('.node')) }));
}
EOF

status_json() { timeout 30 node dist/src/cli/main.js status --config "$CFG" --json 2>/dev/null; }
# wait_for SECONDS DESCRIPTION JQ-EXPRESSION (on the status JSON)
wait_for() {
  local limit=$1 what=$2 expr=$3 end=$(( $(date +%s) + $1 )) s
  while :; do
    s=$(status_json || true)
    if [ -n "$s" ] && jq -e "$expr" >/dev/null <<<"$s"; then return 0; fi
    [ "$(date +%s)" -lt "$end" ] || { echo "$s" >&2; fail "timed out after ${limit} s waiting for: $what"; }
    kill -0 "$GW_PID" 2>/dev/null || fail "the gateway exited while waiting for: $what"
    sleep 0.5
  done
}
# send LOGNAME FILES...: storescu must exit 0 with one Success response per file
send() {
  local log="$WORK/$1"; shift
  TCP_NODELAY=1 timeout 120 storescu -v -aet ARMSMOKE -aec PACS_EDGE 127.0.0.1 "$GW_PORT" "$@" >"$log" 2>&1 \
    || fail "storescu exited $? (see $log)"
  local ok; ok=$(grep -c 'Received Store Response (Success)' "$log" || true)
  [ "$ok" = "$#" ] || fail "storescu: $ok of $# instances acknowledged with Success (see $log)"
}
start_pacs() {
  (cd "$WORK/pacs" && exec storescp --fork +xt -aet PACS -od "$WORK/pacs" -fe .dcm "$PACS_PORT") >"$WORK/storescp.log" 2>&1 &
  SCP_PID=$!
}

# --- the gateway on arm64 Node 24 under emulation -----------------------------------------------
a=$(now)
"$QEMU" -L "$SYSROOT" "$ARM_NODE" --require "$PROBE" "$GW_MAIN" run --config "$CFG" >"$WORK/gateway.log" 2>&1 &
GW_PID=$!
end=$(( $(date +%s) + 90 ))
until grep -q '"msg":"gateway listening"' "$WORK/gateway.log" 2>/dev/null; do
  kill -0 "$GW_PID" 2>/dev/null || fail "the gateway exited during start-up"
  [ "$(date +%s)" -lt "$end" ] || fail "the gateway did not start within 90 s"
  sleep 0.1
done
timeout 30 echoscu -aet ARMSMOKE -aec PACS_EDGE 127.0.0.1 "$GW_PORT" || fail "C-ECHO to the gateway failed"
grep -q '"msg":"installation integrity verified"' "$WORK/gateway.log" || fail "the package's manifest was not verified at start (security.integrity: enforce)"
T_START=$(secs "$a" "$(now)")
say "gateway up under emulation in ${T_START} s (pid $GW_PID, 127.0.0.1:$GW_PORT)"

EXE=$(readlink "/proc/$GW_PID/exe")
[ "$(basename "$EXE")" = "$QEMU" ] || fail "gateway pid $GW_PID runs $EXE, not $QEMU"
grep -q "arm-smoke-probe {\"at\":\"start\",\"arch\":\"arm64\",\"platform\":\"linux\",\"version\":\"v24\." "$WORK/gateway.log" \
  || fail "the gateway's probe line does not say arm64 Node 24: $(grep arm-smoke-probe "$WORK/gateway.log" || echo none)"
# QEMU maps the guest's shared objects into its own address space: the addon shows in the maps.
MAPPED=$(grep -o '/[^ ]*\.node$' "/proc/$GW_PID/maps" | sort -u)
echo "$MAPPED" | grep -x "$CL_DIR/prebuilds/linux-arm64/[^/]*\.node" >/dev/null || fail "classic-level's linux-arm64 prebuild is not mapped by the gateway; mapped addons: ${MAPPED:-none}"
[ "$(echo "$MAPPED" | grep -c .)" = 1 ] || fail "unexpected native addons mapped: $MAPPED"
CL_LOADED=$MAPPED
say "gateway process: $EXE running $(file -L "$ARM_NODE" | cut -d, -f1-2 | sed 's/^[^:]*: //'); addon mapped: ${CL_LOADED#"$ROOT/"}"

# --- phase 1: the PACS is down: 25 instances are spooled and compressed at rest ------------------
a=$(now)
t_first=$a
send storescu-1.log "${FILES[@]:0:HALF}"
T_SEND1=$(secs "$a" "$(now)")
wait_for 120 "$HALF objects compressed at rest" ".spool.compressAtRest.compressed == $HALF and .spool.compressAtRest.backlog == 0 and .spool.compressAtRest.errors == 0"
T_REST=$(secs "$a" "$(now)")
S=$(status_json)
say "PACS down: $HALF stored in ${T_SEND1} s; compressed at rest (JPEG-LS) after ${T_REST} s: $(jq -r '.spool.compressAtRest | "\(.bytesIn) -> \(.bytesOut) bytes"' <<<"$S"); pending $(jq -r '.destinations[0].pending' <<<"$S")"

# --- phase 2: the PACS comes up; the backlog drains, then 25 more go through live -------------------
a=$(now)
start_pacs
wait_for 60 "the backlog delivered" ".destinations[0].sent == $HALF and .destinations[0].pending == 0"
T_DRAIN=$(secs "$a" "$(now)")
a=$(now)
send storescu-2.log "${FILES[@]:HALF}"
T_SEND2=$(secs "$a" "$(now)")
wait_for 120 "all $N delivered" ".destinations[0].sent == $N and .destinations[0].pending == 0 and .destinations[0].deadLettered == 0"
T_LIVE=$(secs "$a" "$(now)")
T_ALL=$(secs "$t_first" "$(now)")
S=$(status_json)
say "PACS up: backlog of $HALF delivered in ${T_DRAIN} s; $((N - HALF)) more stored in ${T_SEND2} s and delivered after ${T_LIVE} s"
say "status: $(jq -c '{stored: .receive.objectsStored, refused: .receive.objectsFailed, atRest: .spool.compressAtRest, dest: (.destinations[0] | {state, sent, pending, deadLettered, compression})}' <<<"$S")"

# --- what the PACS received ------------------------------------------------------------------------
mapfile -t GOT < <(ls "$WORK"/pacs/*.dcm 2>/dev/null)
[ "${#GOT[@]}" = "$N" ] || fail "storescp holds ${#GOT[@]} files, expected $N"
for f in "${GOT[@]}"; do dcmdump -q +P 0008,0018 "$f"; done | sed -E 's/.*\[([^]]*)\].*/\1/' | sort > "$WORK/uids.received"
cmp -s "$WORK/uids.sent" "$WORK/uids.received" || { diff "$WORK/uids.sent" "$WORK/uids.received" >&2 || true; fail "the SOP Instance UIDs at storescp differ from those sent"; }
BAD_TS=0 BAD_PX=0
for f in "${GOT[@]}"; do
  ts=$(dcmdump -q -Un -M +P 0002,0010 "$f" | sed -E 's/.*\[([^]]*)\].*/\1/')
  [ "$ts" = "$TS_JLS" ] || { echo "arm-smoke: $f arrived in $ts" >&2; BAD_TS=$((BAD_TS + 1)); continue; }
  # dcmdjpls (CharLS in DCMTK, not the gateway's codec) decodes it; the pixel data must be the source's.
  n=$(dcmdump -q -M +P 0020,0013 "$f" | sed -E 's/.*\[([^]]*)\].*/\1/')
  name=$(printf %03d "$n")
  out="$WORK/check/$name"
  mkdir -p "$out"
  dcmdjpls "$f" "$out/decoded.dcm" || { BAD_PX=$((BAD_PX + 1)); continue; }
  dcmdump -q +W "$out" "$out/decoded.dcm" >/dev/null
  raw=$(ls "$out"/*.raw 2>/dev/null | head -n1)
  cmp -s "$raw" "$WORK/raw/$name.raw" || { echo "arm-smoke: pixel data of instance $n differs from the source" >&2; BAD_PX=$((BAD_PX + 1)); continue; }
  # and every other attribute too
  diff <(dcmdump -q "$out/decoded.dcm" | grep -v '^(7fe0,0010)') <(dcmdump -q "$WORK/in/$name.dcm" | grep -v '^(7fe0,0010)') >/dev/null \
    || { echo "arm-smoke: attributes of instance $n differ from the source" >&2; BAD_PX=$((BAD_PX + 1)); }
done
[ "$BAD_TS" = 0 ] || fail "$BAD_TS of $N objects did not arrive JPEG-LS lossless ($TS_JLS)"
[ "$BAD_PX" = 0 ] || fail "$BAD_PX of $N objects do not decode to the data set sent"
say "storescp: $N files, the $N SOP Instance UIDs sent, all $TS_JLS (JPEG-LS lossless); dcmdjpls decodes each to the pixel data and attributes sent"

# --- SIGTERM: clean stop, exit 0 ----------------------------------------------------------------------
a=$(now)
kill -TERM "$GW_PID"
end=$(( $(date +%s) + 60 ))
while kill -0 "$GW_PID" 2>/dev/null; do
  [ "$(date +%s)" -lt "$end" ] || fail "the gateway did not stop within 60 s of SIGTERM"
  sleep 0.2
done
rc=0; wait "$GW_PID" || rc=$?
GW_PID=''
T_STOP=$(secs "$a" "$(now)")
[ "$rc" = 0 ] || fail "the gateway exited $rc after SIGTERM"
grep -q '"msg":"gateway stopped"' "$WORK/gateway.log" || fail "no 'gateway stopped' line in the gateway's log"
EXIT_LINE=$(grep 'arm-smoke-probe {"at":"exit"' "$WORK/gateway.log" || true)
[ -n "$EXIT_LINE" ] || fail "no probe exit line in the gateway's log"
[ "$(jq -c '.addons' <<<"${EXIT_LINE#arm-smoke-probe }")" = "[\"$CL_LOADED\"]" ] || fail "addons loaded by the gateway: $EXIT_LINE"
# The logger writes level names ("error", "fatal"), not pino's numbers.
if grep -Eq '"level":"(error|fatal)"' "$WORK/gateway.log"; then
  grep -E '"level":"(error|fatal)"' "$WORK/gateway.log" >&2
  fail "the gateway logged errors"
fi
grep -q '"level":"info"' "$WORK/gateway.log" || fail "no log line with a level name: the error check above would see nothing"
kill -TERM "$SCP_PID" 2>/dev/null || true
wait "$SCP_PID" 2>/dev/null || true
SCP_PID=''

OK=1
say "gateway stopped on SIGTERM in ${T_STOP} s, exit 0"
echo "arm-smoke: PASS: Node ${ARM_INFO%% *} linux-arm64 under $QEMU; gateway start-up ${T_START} s; $N instances in ${T_ALL} s from the first C-STORE to the last delivery (stored in ${T_SEND1} + ${T_SEND2} s; $HALF compressed at rest after ${T_REST} s while the PACS was down; backlog delivered ${T_DRAIN} s after it came up; $((N - HALF)) more delivered ${T_LIVE} s after their C-STOREs began); whole script $(secs "$t0" "$(now)") s"
