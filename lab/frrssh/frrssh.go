// Package frrssh gives tests a border router as sdnoc's CLI actuator meets
// one: FRR in a network namespace, sshd in front of it with vtysh as the
// only shell, and a real BGP session to a GoBGP speaker, so that a change
// made over SSH shows on the wire.
package frrssh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sdnoc/sdnoc/actuators/bgp"
	"github.com/sdnoc/sdnoc/actuators/cli"
	"github.com/sdnoc/sdnoc/lab/frr"
	"github.com/sdnoc/sdnoc/lab/netns"
	"github.com/sdnoc/sdnoc/lab/netns/netnstest"
)

// keyPair writes an ed25519 private key (OpenSSH PEM) to path and returns
// its public key in authorized_keys form.
func KeyPair(t testing.TB, path string) string {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
}

// Router is an FRR border router (AS 64502) in a namespace, reached over
// SSH (sshd with vtysh as the forced command), with a real BGP session to
// a GoBGP speaker (AS 65000) of the test's process across a veth.
type Router struct {
	FRR     *frr.Router
	Speaker *bgp.Speaker
	// Peer is the speaker's address: FRR's neighbour.
	Peer netip.Addr
	// Dir holds the router's, sshd's and the client's files.
	Dir string
	// Addr is sshd's address; KnownHosts holds its host key, KeyFile the
	// client key root may log in with.
	Addr                netip.AddrPort
	KnownHosts, KeyFile string
}

// ASN is the router's AS number.
const ASN = 64502

// Start builds the router, its sshd and the speaker's session, all
// removed at the test's cleanup, and returns once the session is up. It
// skips the test (fails it with SDNOC_REQUIRE_LAB=1) where namespaces,
// FRR or sshd are missing.
func Start(t testing.TB) *Router {
	t.Helper()
	l := netnstest.New(t, "sshd", "vtysh")
	ctx := t.Context()
	dir := netnstest.Dir(t)
	ns, err := l.Namespace(ctx, "br")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := l.Subnet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := netip.PrefixFrom(sub.Addr().Next(), 30), netip.PrefixFrom(sub.Addr().Next().Next(), 30)
	if _, _, err := l.Veth(ctx, netns.End{Addr: ours}, netns.End{NS: ns, Name: "uplink", Addr: theirs}); err != nil {
		t.Fatal(err)
	}
	fr, err := frr.Start(ctx, frr.Config{Name: "br1", Dir: filepath.Join(dir, "frr"), Namespace: ns.Name(), ASN: 64502,
		RouterID: theirs.Addr(), Neighbors: []frr.Neighbor{{Address: ours.Addr(), ASN: 65000}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fr.Stop(context.Background()) })

	sp, err := bgp.New(bgp.Config{ASN: 65000, RouterID: ours.Addr().String(), Neighbors: []bgp.Neighbor{{Name: "br1",
		Address: theirs.Addr().String(), PeerASN: 64502, LocalAddress: ours.Addr().String(), ListenPort: -1}}}, bgp.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Stop(context.Background()) })

	// sshd: its own config, host key and authorized key, vtysh forced.
	sd := filepath.Join(dir, "sshd")
	if err := os.MkdirAll(sd, 0o755); err != nil {
		t.Fatal(err)
	}
	hostPub := KeyPair(t, filepath.Join(sd, "host_key"))
	clientPub := KeyPair(t, filepath.Join(dir, "id_ed25519"))
	os.WriteFile(filepath.Join(sd, "authorized_keys"), []byte(clientPub+"\n"), 0o600)
	addr := netip.AddrPortFrom(theirs.Addr(), 2222)
	conf := fmt.Sprintf(`ListenAddress %s
HostKey %s
AuthorizedKeysFile %s
PidFile none
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
ForceCommand vtysh --vty_socket %s
`, addr, filepath.Join(sd, "host_key"), filepath.Join(sd, "authorized_keys"), filepath.Join(dir, "frr", "run"))
	os.WriteFile(filepath.Join(sd, "sshd_config"), []byte(conf), 0o600)
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // sshd's privilege separation directory
		t.Fatal(err)
	}
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		t.Fatal(err)
	}
	proc, err := ns.Start(sshd, "-D", "-e", "-f", filepath.Join(sd, "sshd_config"))
	if err != nil {
		t.Fatal(err)
	}
	for began := time.Now(); ; {
		c, err := net.DialTimeout("tcp", addr.String(), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Since(began) > 10*time.Second {
			t.Fatalf("sshd does not answer on %s: %v\n%s", addr, err, proc.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	known := filepath.Join(dir, "known_hosts")
	os.WriteFile(known, []byte(fmt.Sprintf("[%s]:%d %s\n", addr.Addr(), addr.Port(), hostPub)), 0o600)

	r := &Router{FRR: fr, Speaker: sp, Peer: ours.Addr(), Dir: dir, Addr: addr, KnownHosts: known, KeyFile: filepath.Join(dir, "id_ed25519")}
	r.WaitSession(t, true)
	return r
}

// CLI returns the actuator's configuration of the router, as name.
func (r *Router) CLI(name string) cli.Router {
	return cli.Router{Name: name, Address: r.Addr.String(), User: "root", KeyFile: r.KeyFile, KnownHosts: r.KnownHosts}
}

// WaitSession waits for the BGP session, as the speaker sees it, to be
// up (or down), and returns how long that took.
func (r *Router) WaitSession(t testing.TB, up bool) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		ss, err := r.Speaker.Sessions(t.Context())
		if err == nil && ss["br1"].Up == up {
			return time.Since(began)
		}
		if time.Since(began) > 30*time.Second {
			t.Fatalf("session up=%v not reached in 30 s: %+v, %v", up, ss["br1"], err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Running returns the router's running configuration, read with vtysh
// directly (not over SSH).
func (r *Router) Running(t testing.TB) string {
	t.Helper()
	out, err := r.FRR.VTY(t.Context(), "show running-config")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
