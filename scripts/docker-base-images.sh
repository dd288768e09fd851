#!/usr/bin/env bash
# Builds, from this machine and without any image registry, the two base images the Dockerfile names in its FROM lines,
# and tags them as the official images:
#
#   node:20-bookworm       the build stage: node, npm and node-gyp's toolchain (python3, make, g++) with Node's headers,
#                          on the Debian packages they need (bash, coreutils, …) copied from this machine's installed
#                          packages (`dpkg -L` of the closure of their dependencies, docs and man pages left out);
#   node:20-bookworm-slim  the runtime stage: this machine's node binary, the shared libraries `ldd` names for it,
#                          busybox-static as /bin/sh and the usual applets (mkdir, chown, ls, …), /etc/passwd and group,
#                          and the CA bundle.
#
# On a machine that reaches Docker Hub these are the official images and this script is not needed: `docker build .`
# pulls them. Here (no registry), run it once before `docker build`; test/image.test.ts does.
#
# It needs a Debian (bookworm) host with Node 20 installed from a Debian package (NodeSource's `nodejs`: node, npm and
# the headers under /usr), the packages python3, make and g++ installed, busybox-static (/bin/busybox) and a Docker
# daemon. The build stage gets this machine's npm settings (its global npmrc, e.g. a `cafile`) and `nodedir=/usr`, so
# node-gyp compiles native modules (better-sqlite3) against the local headers instead of downloading them.
#
# Usage: scripts/docker-base-images.sh [--force]
#   An image whose tag exists already is kept (the script says so and moves on) unless --force.
#   MESHAGENT_BASE_FULL / MESHAGENT_BASE_SLIM override the two tags.
set -euo pipefail

FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "unknown argument: $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

FULL_TAG="${MESHAGENT_BASE_FULL:-node:20-bookworm}"
SLIM_TAG="${MESHAGENT_BASE_SLIM:-node:20-bookworm-slim}"

die() {
  echo "docker-base-images: $*" >&2
  exit 1
}
for cmd in docker tar ldd dpkg-query apt-cache; do command -v "$cmd" >/dev/null 2>&1 || die "$cmd is not installed"; done
docker info >/dev/null 2>&1 || die "no Docker daemon answers (start dockerd)"

NODE="$(readlink -f "$(command -v node)")" || die "node is not installed"
NODE_VERSION="$("$NODE" -p 'process.versions.node')"
[ "${NODE_VERSION%%.*}" = 20 ] || echo "docker-base-images: warning: this machine's node is $NODE_VERSION, tagged as node 20" >&2

exists() { docker image inspect "$1" >/dev/null 2>&1; }
want() {
  if [ "$FORCE" = 0 ] && exists "$1"; then
    echo "docker-base-images: $1 exists, kept (--force rebuilds it)"
    return 1
  fi
}

WORK="$(mktemp -d "${TMPDIR:-/tmp}/meshagent-base-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# The top-level directories that are symlinks here (usrmerge: /bin -> usr/bin, /lib -> usr/lib, …).
MERGED=()
for d in bin sbin lib lib32 lib64 libx32; do [ -L "/$d" ] && MERGED+=("$d"); done

# stage_import ROOTFS TAG CHANGE…: the directory as an image (owned by root), with the given Dockerfile instructions.
stage_import() {
  local root="$1" tag="$2"
  shift 2
  local changes=()
  for c in "$@"; do changes+=(--change "$c"); done
  changes+=(--change "LABEL org.opencontainers.image.description=\"built locally by scripts/docker-base-images.sh (stands in for the official $tag)\"")
  tar -C "$root" --numeric-owner --owner=0 --group=0 -c . | docker import "${changes[@]}" - "$tag" >/dev/null
  echo "docker-base-images: $tag built ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
}

common_etc() {
  local root="$1"
  mkdir -p "$root/etc" "$root/tmp" "$root/var/tmp" "$root/root"
  chmod 1777 "$root/tmp" "$root/var/tmp"
  chmod 700 "$root/root"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    mkdir -p "$root/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  fi
}

PATH_ENV="ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

build_slim() {
  local root="$WORK/slim"
  local busybox=/bin/busybox
  [ -x "$busybox" ] || die "$busybox is missing: apt-get install busybox-static"
  if ldd "$busybox" >/dev/null 2>&1; then die "$busybox is dynamically linked: install busybox-static"; fi
  mkdir -p "$root/bin" "$root/usr/local/bin"
  cp "$(readlink -f "$busybox")" "$root/bin/busybox"
  local applet
  while read -r applet; do
    [ -n "$applet" ] && [ "$applet" != bin/busybox ] && [ "$applet" != linuxrc ] || continue
    mkdir -p "$root/$(dirname "$applet")"
    [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
  done < <("$busybox" --list-full)
  cp "$NODE" "$root/usr/local/bin/node"
  # the libraries at the paths the loader asks for (ldd's), with the files' contents
  local lib
  while read -r lib; do
    mkdir -p "$root/$(dirname "$lib")"
    cp "$(readlink -f "$lib")" "$root/$lib"
  done < <(ldd "$NODE" | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p')
  common_etc "$root"
  stage_import "$root" "$SLIM_TAG" "$PATH_ENV" "ENV NODE_VERSION=$NODE_VERSION" 'CMD ["node"]'
}

build_full() {
  local root="$WORK/full"
  dpkg-query -W -f='${Status}\n' nodejs 2>/dev/null | grep -q "ok installed" ||
    die "node is not from a Debian package (nodejs): this script copies its files by package"
  local roots=(nodejs python3 make g++ gcc dash bash coreutils findutils grep sed mawk tar gzip ca-certificates)
  local pkgs
  # The dependency closure (no recommends), restricted to what is installed here.
  pkgs="$(comm -12 \
    <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances \
      "${roots[@]}" 2>/dev/null | grep -v '^[ <]' | sort -u) \
    <(dpkg-query -W -f='${Package}\n' | sort -u))"
  for p in "${roots[@]}"; do grep -qx "$p" <<<"$pkgs" || die "package $p is not installed (apt-get install $p)"; done
  local sed_merged=""
  for d in "${MERGED[@]}"; do sed_merged+="s#^/$d/#/usr/$d/#; s#^/$d\$#/usr/$d#; "; done
  # Every file the packages installed (npm is copied whole below: it is often upgraded over the package's files),
  # without documentation, man pages and translations; paths that no longer exist here are left out.
  # shellcheck disable=SC2086
  dpkg -L $pkgs 2>/dev/null |
    grep '^/.' |
    grep -Ev '^/usr/share/(doc|man|info|locale|lintian|bug)(/|$)|^/usr/lib/node_modules/(npm|corepack)(/|$)' |
    sed "$sed_merged" |
    sort -u |
    while IFS= read -r f; do if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\n' "${f#/}"; fi; done >"$WORK/files"
  [ -d usr/lib/node_modules/npm ] || die "/usr/lib/node_modules/npm is missing"
  {
    find usr/lib/node_modules/npm
    # commands that update-alternatives made (cc, c++, …), when what they lead to is in the image
    local link
    find usr/bin usr/sbin -maxdepth 1 -lname '/etc/alternatives/*' | while IFS= read -r link; do
      if grep -qxF "$(readlink -f "$link" | sed 's#^/##')" "$WORK/files"; then printf '%s\n' "$link" "$(readlink "$link" | sed 's#^/##')"; fi
    done
    if [ -d etc/ld.so.conf.d ]; then find etc/ld.so.conf etc/ld.so.conf.d; fi
    for f in usr/bin/npm usr/bin/npx; do if [ -L "$f" ] || [ -e "$f" ]; then echo "$f"; fi; done
  } >>"$WORK/files"
  mkdir -p "$root"
  for d in "${MERGED[@]}"; do ln -s "usr/$d" "$root/$d"; done
  tar -C / --no-recursion -T "$WORK/files" -cf - | tar -C "$root" --keep-directory-symlink -xf -
  [ -x "$root/usr/bin/node" ] && [ -f "$root/usr/include/node/node.h" ] || die "node or its headers (/usr/include/node) are missing"
  [ -e "$root/usr/bin/npm" ] || ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/bin/npm"
  [ -e "$root/usr/bin/npx" ] || ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/bin/npx"
  common_etc "$root"
  # npm's global settings here (e.g. the CA file of this network), and node-gyp's headers: the local ones.
  local globalrc
  globalrc="$(npm config get globalconfig 2>/dev/null || echo /usr/etc/npmrc)"
  mkdir -p "$root/usr/etc"
  {
    if [ -f "$globalrc" ]; then grep -v '^nodedir=' "$globalrc" || true; fi
    echo "nodedir=/usr"
  } >"$root/usr/etc/npmrc"
  stage_import "$root" "$FULL_TAG" "$PATH_ENV" "ENV NODE_VERSION=$NODE_VERSION" "ENV npm_config_nodedir=/usr" 'CMD ["node"]'
}

start=$(date +%s)
if want "$SLIM_TAG"; then build_slim; fi
if want "$FULL_TAG"; then (cd / && build_full); fi
echo "docker-base-images: done in $(($(date +%s) - start))s"
