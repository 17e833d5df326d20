#!/usr/bin/env bash
# Installs, with apt-get, the tools sdnoc's namespace lab and its tests
# (lab/realpeers) use, whichever are missing. Idempotent: when all are
# there it exits 0 at once, touching nothing. Installing needs root;
# Debian/Ubuntu only.
#
#   sudo lab/install.sh
set -euo pipefail

# Debian package -> why the lab needs it.
packages=(
	frr          # ISP routers (zebra, bgpd, vtysh)
	softflowd    # NetFlow v5/v9/IPFIX exporter
	pmacct       # pmacctd: sFlow and NetFlow probes
	iperf3       # traffic
	nftables     # loss impairment (nft numgen)
	iproute2     # ip netns, veth, tc
	iputils-ping # ping
	libpcap-dev  # headers for the softflowd immediate-mode shim
	gcc          # builds that shim
	openssh-server # sshd, run by the lab in a namespace with vtysh as the shell (actuators/cli); never as a service
)

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "lab/install.sh: dpkg-query not found: this script installs Debian packages with apt-get;" \
		"install by hand: ${packages[*]}" >&2
	exit 1
fi

missing=()
for p in "${packages[@]}"; do
	if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
		missing+=("$p")
	fi
done

if ((${#missing[@]} == 0)); then
	exit 0
fi

if ((EUID != 0)); then
	echo "lab/install.sh: missing ${missing[*]}; installing needs root: run sudo lab/install.sh" >&2
	exit 1
fi

echo "lab/install.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# The lab starts its own FRR and sshd in namespaces: no package may start
# its service on the host (sshd on :22, say). policy-rc.d says so to
# invoke-rc.d for the length of the install, unless one is already there.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
