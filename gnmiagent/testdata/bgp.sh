#!/bin/sh
# Stands in for `vtysh -c 'show bgp neighbors json'`: prints the sample
# FRR output next to this script.
exec cat "$(dirname "$0")/frr-neighbors.json"
