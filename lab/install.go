// Package lab holds what the sdnoc binary needs of the lab's folder:
// the script that installs the lab's tools. The lab itself is in
// netlab (namespaces), loopback (in-process), frr and netns.
package lab

import _ "embed"

// InstallScript is lab/install.sh: it installs, with apt-get, whichever
// of the lab's tools are missing.
//
//go:embed install.sh
var InstallScript string
