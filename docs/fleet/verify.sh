#!/usr/bin/env bash
# Checks the sample Mosquitto files in docs/fleet/mosquitto/ with real brokers on loopback:
# ACL (own topics only), read-only dashboard, command operator, client certificates,
# last will, and the site -> central bridge. Needs: mosquitto, mosquitto-clients, openssl.
# Uses 127.0.0.1:18831-18833 only, a temp dir, and kills only the brokers it started.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/pacs-edge-fleet.XXXXXX)
C_PW=18831 C_CERT=18832 S_PW=18833
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; [[ -n ${KEEP:-} ]] && echo "kept $T" || rm -rf "$T"; }
trap cleanup EXIT
pass=0 fail=0
ok()  { echo "PASS  $*"; pass=$((pass+1)); }
bad() { echo "FAIL  $*"; fail=$((fail+1)); }

# ---- test PKI: one CA, a server cert for 127.0.0.1/localhost, a gateway cert CN=edge-us3
mkdir -p "$T/etc" "$T/central-db" "$T/site-db"
cd "$T/etc"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-fleet-ca -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=edge-us3 -keyout edge-us3.key -out edge-us3.csr 2>/dev/null
openssl x509 -req -in edge-us3.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out edge-us3.pem 2>/dev/null
cp ca.pem central-ca.pem
cp "$HERE/mosquitto/acl" acl

# ---- password files (mosquitto_passwd -b: batch mode, for this test only)
: > central.passwd; : > site.passwd
for u in edge-xa4 svc-dashboard svc-ops bridge-hospital-a; do mosquitto_passwd -b central.passwd "$u" "pw-$u"; done
for u in edge-ct1 edge-mr2 svc-dashboard; do mosquitto_passwd -b site.passwd "$u" "pw-$u"; done
chown -R mosquitto "$T" 2>/dev/null; chmod -R a+rX "$T"

# ---- broker configs = the sample files, with paths/ports/secrets swapped for this test
sed -e "s#/etc/mosquitto/pacs-edge/passwd#$T/etc/central.passwd#" \
    -e "s#/etc/mosquitto/pacs-edge/#$T/etc/#g" -e "s#/var/lib/mosquitto/#$T/central-db/#" \
    -e "s#^listener 8883#listener $C_PW 127.0.0.1#" -e "s#^listener 8884#listener $C_CERT 127.0.0.1#" \
    "$HERE/mosquitto/central.conf" > "$T/central.conf"
sed -e "s#/etc/mosquitto/pacs-edge/passwd#$T/etc/site.passwd#" \
    -e "s#/etc/mosquitto/pacs-edge/#$T/etc/#g" -e "s#/var/lib/mosquitto/#$T/site-db/#" \
    -e "s#^listener 8883#listener $S_PW 127.0.0.1#" \
    -e "s#^address .*#address 127.0.0.1:$C_PW#" \
    -e "s#^remote_password .*#remote_password pw-bridge-hospital-a#" \
    -e "s#^restart_timeout .*#restart_timeout 2 4#" \
    "$HERE/mosquitto/site-hospital-a.conf" > "$T/site.conf"

start() { # name conf
  mosquitto -c "$2" >> "$T/$1.log" 2>&1 &
  PIDS+=($!); eval "${1}_PID=$!"; sleep 1
  kill -0 "$!" 2>/dev/null || { echo "broker $1 did not start:"; cat "$T/$1.log"; exit 1; }
}

TLS=(--cafile "$T/etc/ca.pem" -h 127.0.0.1)
# pub PORT USER TOPIC PAYLOAD [extra args]  -> prints mosquitto_pub's stderr, returns its rc
pub() { local port=$1 user=$2 topic=$3 msg=$4; shift 4
  mosquitto_pub "${TLS[@]}" -p "$port" -u "$user" -P "pw-$user" -i "t-$user-$RANDOM" -V mqttv5 -q 1 -t "$topic" -m "$msg" "$@" 2>&1; }
# sub PORT USER FILTER SECONDS -> "retain topic payload" lines received within SECONDS
sub() { local port=$1 user=$2 filter=$3 secs=$4; shift 4
  mosquitto_sub "${TLS[@]}" -p "$port" -u "$user" -P "pw-$user" -i "t-$user-$RANDOM" -V mqttv5 -t "$filter" -W "$secs" -F '%r %t %p' "$@" 2>/dev/null; true; }
expect_pub_ok()     { local out; out=$(pub "$@"); [[ -z $out ]] && ok "$2 may publish $3" || bad "$2 publish $3: $out"; }
expect_pub_denied() { local out; out=$(pub "$@"); [[ $out == *"Not authorized"* ]] && ok "$2 may NOT publish $3 ($out)" || bad "$2 publish $3 was not refused: '$out'"; }
has()   { grep -qF -- "$2" <<<"$1" && ok "$3" || { bad "$3"; echo "      got: $(tr '\n' '|' <<<"$1")"; }; }
hasnt() { grep -qF -- "$2" <<<"$1" && { bad "$3"; echo "      got: $(tr '\n' '|' <<<"$1")"; } || ok "$3"; }

start central "$T/central.conf"
echo "== central broker: ACL, passwords, client certificates (127.0.0.1:$C_PW, :$C_CERT)"
ST='{"state":"online","version":"0.9.0","startedAt":"2026-01-01T00:00:00Z"}'
expect_pub_ok     $C_PW edge-xa4 pacs-edge/hospital-b/edge-xa4/status "$ST" -r
expect_pub_ok     $C_PW edge-xa4 pacs-edge/hospital-b/edge-xa4/health '{"uptimeSeconds":1}' -r
expect_pub_denied $C_PW edge-xa4 pacs-edge/hospital-b/edge-us3/status '{"state":"offline"}' -r
expect_pub_denied $C_PW edge-xa4 pacs-edge/hospital-a/edge-ct1/cmd/ping '{}'
expect_pub_denied $C_PW svc-dashboard pacs-edge/hospital-b/edge-xa4/status '{"state":"offline"}' -r
expect_pub_denied $C_PW svc-dashboard pacs-edge/hospital-b/svc-dashboard/status '{"state":"online"}' -r
expect_pub_denied $C_PW svc-ops pacs-edge/hospital-b/svc-ops/status '{"state":"online"}' -r
expect_pub_denied $C_PW bridge-hospital-a pacs-edge/hospital-b/edge-xa4/status '{"state":"offline"}' -r
out=$(mosquitto_pub "${TLS[@]}" -p $C_PW -u edge-xa4 -P wrong -V mqttv5 -t x -m x 2>&1)
[[ $out == *"Not authorized"* || $out == *"authoris"* || $out == *"Bad user name or password"* ]] && ok "wrong password refused ($out)" || bad "wrong password: '$out'"

# client certificate, CN=edge-us3, no username/password
cpub() { mosquitto_pub "${TLS[@]}" -p $C_CERT --cert "$T/etc/edge-us3.pem" --key "$T/etc/edge-us3.key" -V mqttv5 -q 1 "$@" 2>&1; }
out=$(cpub -t pacs-edge/hospital-b/edge-us3/status -m "$ST" -r); [[ -z $out ]] && ok "cert CN=edge-us3 may publish its own status (no password)" || bad "cert own status: $out"
out=$(cpub -t pacs-edge/hospital-b/edge-xa4/status -m '{"state":"offline"}' -r); [[ $out == *"Not authorized"* ]] && ok "cert CN=edge-us3 may NOT publish edge-xa4's status" || bad "cert other status: '$out'"
out=$(mosquitto_pub "${TLS[@]}" -p $C_CERT -V mqttv5 -t x -m x 2>&1); [[ -n $out ]] && ok "cert listener refuses a client without certificate" || bad "cert listener accepted a client without certificate"

got=$(sub $C_PW svc-dashboard 'pacs-edge/+/+/status' 2)
has   "$got" "1 pacs-edge/hospital-b/edge-xa4/status $ST" "dashboard sees edge-xa4's retained status at once"
has   "$got" "1 pacs-edge/hospital-b/edge-us3/status $ST" "dashboard sees edge-us3's retained status at once"
hasnt "$got" '"offline"' "no refused publish reached the retained store"
got=$(sub $C_PW edge-xa4 'pacs-edge/#' 2)
[[ -z $got ]] && ok "a gateway subscribing to pacs-edge/# receives nothing of other gateways" || bad "gateway read others: $got"

# command round trip + last will
mosquitto_sub "${TLS[@]}" -p $C_PW -u edge-xa4 -P pw-edge-xa4 -i pacs-edge-edge-xa4 -V mqttv5 -q 1 \
  -t 'pacs-edge/hospital-b/edge-xa4/cmd/#' -F '%t %p' \
  --will-topic pacs-edge/hospital-b/edge-xa4/status --will-payload '{"state":"offline"}' --will-retain --will-qos 1 \
  > "$T/xa4-cmd.out" 2>&1 &
GW=$!; sleep 1
sub $C_PW svc-ops 'pacs-edge/+/+/cmd-result/#' 3 > "$T/ops-result.out" & OPS=$!
sleep 0.5
expect_pub_ok     $C_PW svc-ops  pacs-edge/hospital-b/edge-xa4/cmd/ping '{"id":"1"}'
expect_pub_ok     $C_PW edge-xa4 pacs-edge/hospital-b/edge-xa4/cmd-result/ping '{"id":"1","ok":true}'
wait $OPS
has "$(cat "$T/xa4-cmd.out")" 'pacs-edge/hospital-b/edge-xa4/cmd/ping {"id":"1"}' "gateway receives svc-ops' cmd/ping"
has "$(cat "$T/ops-result.out")" 'pacs-edge/hospital-b/edge-xa4/cmd-result/ping' "svc-ops receives cmd-result/ping"
kill -9 $GW; wait $GW 2>/dev/null; sleep 1
got=$(sub $C_PW svc-dashboard 'pacs-edge/hospital-b/edge-xa4/status' 1)
has "$got" '1 pacs-edge/hospital-b/edge-xa4/status {"state":"offline"}' "gateway killed: last will leaves retained offline"
got=$(sub $C_PW svc-dashboard 'pacs-edge/+/+/status' 2 --retained-only | grep '"offline"')
has "$got" 'edge-xa4/status' "offline snapshot (--retained-only | grep offline) lists edge-xa4 only" && hasnt "$got" 'edge-us3' "... and not edge-us3"

echo "== site broker hospital-a (127.0.0.1:$S_PW) bridged to central"
start site "$T/site.conf"
sleep 2
expect_pub_ok $S_PW edge-ct1 pacs-edge/hospital-a/edge-ct1/status "$ST" -r
expect_pub_ok $S_PW edge-ct1 pacs-edge/hospital-a/edge-ct1/health '{"uptimeSeconds":5}' -r
expect_pub_denied $S_PW edge-ct1 pacs-edge/hospital-a/edge-mr2/status '{"state":"offline"}' -r
sleep 1
got=$(sub $C_PW svc-dashboard 'pacs-edge/hospital-a/#' 2)
has "$got" "1 pacs-edge/hospital-a/edge-ct1/status $ST" "central: new subscriber gets edge-ct1's retained status via the bridge (retain flag kept)"
has "$got" '1 pacs-edge/hospital-a/edge-ct1/health {"uptimeSeconds":5}' "central: retained health via the bridge"
got=$(sub $C_PW svc-dashboard '$SYS/broker/connection/+/state' 1)
has "$got" '1 $SYS/broker/connection/bridge-hospital-a/state 1' "central: bridge notification state 1 (retained)"

# command from central to a gateway at the site (bridge direction in)
sub $S_PW edge-ct1 'pacs-edge/hospital-a/edge-ct1/cmd/#' 3 > "$T/ct1-cmd.out" & CT1=$!
sleep 1
expect_pub_ok $C_PW svc-ops pacs-edge/hospital-a/edge-ct1/cmd/ping '{"id":"2"}'
wait $CT1
has "$(cat "$T/ct1-cmd.out")" 'pacs-edge/hospital-a/edge-ct1/cmd/ping {"id":"2"}' "site gateway receives cmd/ping sent on central"

# a site gateway dies: its last will (retained offline) reaches central through the bridge
mosquitto_sub "${TLS[@]}" -p $S_PW -u edge-ct1 -P pw-edge-ct1 -i pacs-edge-edge-ct1 -V mqttv5 -t 'pacs-edge/hospital-a/edge-ct1/cmd/#' \
  --will-topic pacs-edge/hospital-a/edge-ct1/status --will-payload '{"state":"offline"}' --will-retain --will-qos 1 >/dev/null 2>&1 &
GW=$!; sleep 1; kill -9 $GW; wait $GW 2>/dev/null; sleep 1
got=$(sub $C_PW svc-dashboard 'pacs-edge/hospital-a/edge-ct1/status' 1)
has "$got" '1 pacs-edge/hospital-a/edge-ct1/status {"state":"offline"}' "site gateway killed: central holds its retained offline (will via bridge)"
expect_pub_ok $S_PW edge-ct1 pacs-edge/hospital-a/edge-ct1/status "$ST" -r

# new gateway provisioned on central without a restart: mosquitto_passwd + SIGHUP
mosquitto_passwd -b "$T/etc/central.passwd" edge-new pw-edge-new; kill -HUP $central_PID; sleep 1
expect_pub_ok $C_PW edge-new pacs-edge/hospital-b/edge-new/status "$ST" -r

# WAN outage: central down, a gateway at the site comes online, central back
kill $central_PID; wait $central_PID 2>/dev/null; sleep 1
expect_pub_ok $S_PW edge-mr2 pacs-edge/hospital-a/edge-mr2/status "$ST" -r
start central "$T/central.conf"
for i in $(seq 1 30); do   # wait for the bridge to reconnect (restart_timeout)
  [[ $(grep -c "New bridge connected" "$T/central.log") -ge 2 ]] && break; sleep 1
done
sleep 1
got=$(sub $C_PW svc-dashboard 'pacs-edge/hospital-a/+/status' 1)   # a new subscriber: retained only
has "$got" "1 pacs-edge/hospital-a/edge-mr2/status $ST" "after central restart + bridge reconnect: status published during the outage is retained on central"
has "$got" "1 pacs-edge/hospital-a/edge-ct1/status $ST" "central restart kept retained edge-ct1 status (persistence)"

# site broker lost: central keeps the gateways' last status; the bridge's will says 0
kill -9 $site_PID; wait $site_PID 2>/dev/null; sleep 2
got=$(sub $C_PW svc-dashboard '$SYS/broker/connection/+/state' 1)
has "$got" '1 $SYS/broker/connection/bridge-hospital-a/state 0' "site broker killed: central shows bridge state 0 (bridge's last will)"

echo "== $pass passed, $fail failed"
[[ $fail -eq 0 ]]
