#define _GNU_SOURCE
#include <dlfcn.h>
#include <pcap/pcap.h>
int pcap_activate(pcap_t *p) {
	static int (*real)(pcap_t *);
	if (!real) real = (int (*)(pcap_t *))dlsym(RTLD_NEXT, "pcap_activate");
	pcap_set_immediate_mode(p, 1);
	return real(p);
}
