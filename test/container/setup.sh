#!/bin/sh
# Prepares a Debian machine (as root) for test/container/*.test.ts: podman
# with runc, compose implementations, debootstrap for the local stand-in base image, and the
# podman settings this kind of host needs. Idempotent: run it as often as you like.
#
# Why each setting:
# - runtime runc: crun/runc are both fine on a normal host; runc is what the tests were proven on.
# - cgroup_manager cgroupfs: there is no systemd to hand cgroups to in a CI container.
# - default_ulimits: podman's default nofile (1048576) is above the hard limit of a sandboxed host,
#   and setting it fails every container start; nproc is capped for the same reason.
# It owns /etc/containers/containers.conf (rewritten only when it differs): for CI machines.
set -eu

if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null \
   || ! command -v podman-compose >/dev/null || ! command -v docker-compose >/dev/null; then
  # Recommends bring netavark, aardvark-dns (name resolution between compose services),
  # fuse-overlayfs and slirp4netns. docker-compose (v1) only checks that it reads compose.yaml.
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap podman-compose docker-compose
fi

nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=1048576
conf=/etc/containers/containers.conf
want="# written by acemux test/container/setup.sh
[containers]
default_ulimits = [\"nofile=${nofile}:${nofile}\", \"nproc=32768:32768\"]

[engine]
cgroup_manager = \"cgroupfs\"
runtime = \"runc\"
events_logger = \"file\"
"
mkdir -p /etc/containers
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$(printf '%s' "$want")" ]; then
  printf '%s' "$want" > "$conf"
fi
podman info --format 'podman ready: runtime {{.Host.OCIRuntime.Name}}, cgroups {{.Host.CgroupManager}}'
