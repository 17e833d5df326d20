// Package realpeers holds the tests that run sdnoc's collectors against
// real peers in network namespaces: flow exporters (softflowd's NetFlow
// v5, v9 and IPFIX, pmacctd's NetFlow and sFlow probes) and the real
// `sdnoc gnmi-agent`, with known traffic pushed across veths. They need
// root and the tools lab/install.sh installs, and skip without them
// unless SDNOC_REQUIRE_LAB=1. The package has no code of its own.
package realpeers
