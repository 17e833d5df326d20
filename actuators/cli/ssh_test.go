package cli_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
func keyPair(t *testing.T, path string) string {
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

// router is an FRR border router in a namespace, reached over SSH (sshd
// with vtysh as the forced command), with a real BGP session to a GoBGP
// speaker of this process across a veth.
type router struct {
	frr     *frr.Router
	speaker *bgp.Speaker
	peer    netip.Addr // the speaker's address: FRR's neighbour
	act     *cli.Actuator
	steps   []cli.Step
	dir     string
	addr    netip.AddrPort
	known   string
}

func startRouter(t *testing.T) *router {
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
	hostPub := keyPair(t, filepath.Join(sd, "host_key"))
	clientPub := keyPair(t, filepath.Join(dir, "id_ed25519"))
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

	r := &router{frr: fr, speaker: sp, peer: ours.Addr(), dir: dir, addr: addr, known: known}
	cfg := cli.DefaultConfig()
	cfg.Timeout = 10 * time.Second
	cfg.Routers = []cli.Router{{Name: "br1", Address: addr.String(), User: "root", KeyFile: filepath.Join(dir, "id_ed25519"), KnownHosts: known}}
	r.act, err = cli.New(cfg, cli.Deps{OnStep: func(s cli.Step) { r.steps = append(r.steps, s) }})
	if err != nil {
		t.Fatal(err)
	}
	r.waitSession(t, true)
	return r
}

// waitSession waits for the BGP session, as the speaker sees it, to be
// up (or down).
func (r *router) waitSession(t *testing.T, up bool) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		ss, err := r.speaker.Sessions(t.Context())
		if err == nil && ss["br1"].Up == up {
			return time.Since(began)
		}
		if time.Since(began) > 30*time.Second {
			t.Fatalf("session up=%v not reached in 30 s: %+v, %v", up, ss["br1"], err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *router) running(t *testing.T) string {
	t.Helper()
	out, err := r.frr.VTY(t.Context(), "show running-config")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestShutAndEnableNeighborOverSSH(t *testing.T) {
	r := startRouter(t)
	ctx := t.Context()
	text, err := r.act.Running(ctx, "br1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "router bgp 64502") || !strings.Contains(text, "neighbor "+r.peer.String()+" remote-as 65000") {
		t.Fatalf("running config over SSH:\n%s", text)
	}

	res, err := r.act.Apply(ctx, cli.ShutNeighbor("br1", 64502, r.peer))
	if err != nil {
		t.Fatalf("shut: %v\nsteps: %+v", err, res.Steps)
	}
	if !strings.Contains(res.Diff, "+ neighbor "+r.peer.String()+" shutdown\n") || strings.Count(res.Diff, "\n+") != 1 || strings.Contains(res.Diff, "\n-") {
		t.Fatalf("diff of the shut:\n%s", res.Diff)
	}
	took := r.waitSession(t, false)
	t.Logf("neighbor shut over SSH; the BGP session went down %v after", took)
	if !strings.Contains(r.running(t), "neighbor "+r.peer.String()+" shutdown") {
		t.Fatal("vtysh on the router does not show the shutdown")
	}
	var phases []string
	for _, s := range res.Steps {
		phases = append(phases, s.Phase+":"+s.Input)
	}
	want := []string{"capture:show running-config", "apply:router bgp 64502", "apply:neighbor " + r.peer.String() + " shutdown", "apply:exit", "capture:show running-config"}
	if !slices.Equal(phases, want) {
		t.Fatalf("steps = %q\nwant %q", phases, want)
	}
	if len(r.steps) < len(want) {
		t.Fatalf("OnStep saw %d steps", len(r.steps))
	}

	if res, err = r.act.Apply(ctx, cli.EnableNeighbor("br1", 64502, r.peer)); err != nil {
		t.Fatalf("enable: %v", err)
	}
	if !strings.Contains(res.Diff, "- neighbor "+r.peer.String()+" shutdown\n") {
		t.Fatalf("diff of the enable:\n%s", res.Diff)
	}
	r.waitSession(t, true)
}

func TestFailedChangeRollsBack(t *testing.T) {
	r := startRouter(t)
	ctx := t.Context()
	before := r.running(t)
	// The description goes in, then a command FRR refuses: the change
	// must be undone, the description gone again.
	ch := cli.Change{Router: "br1", Commands: []string{"router bgp 64502", "neighbor " + r.peer.String() + " description set-by-test",
		"neighbor " + r.peer.String() + " no-such-keyword 1", "exit"}}
	res, err := r.act.Apply(ctx, ch)
	if !errors.Is(err, cli.ErrRolledBack) || !res.RolledBack || res.Residual != "" {
		t.Fatalf("err = %v, rolled back %v, residual %q; want a clean rollback", err, res.RolledBack, res.Residual)
	}
	if !strings.Contains(err.Error(), "no-such-keyword") {
		t.Fatalf("the error does not name the failing command: %v", err)
	}
	if !strings.Contains(res.Diff, "description set-by-test") || !slices.Contains(res.Undo, "no neighbor "+r.peer.String()+" description set-by-test") {
		t.Fatalf("diff %q, undo %q", res.Diff, res.Undo)
	}
	if after := r.running(t); after != before {
		t.Fatalf("the router is not as it was:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// A change that FRR takes but that does not do what it promised is
	// undone too.
	ch = cli.Change{Router: "br1", Commands: []string{"router bgp 64502", "timers bgp 5 15", "exit"}, Expect: []string{"timers bgp 10 30"}}
	res, err = r.act.Apply(ctx, ch)
	if !errors.Is(err, cli.ErrRolledBack) || !strings.Contains(err.Error(), "lacks timers bgp 10 30") || res.Residual != "" {
		t.Fatalf("broken promise: err = %v, residual %q", err, res.Residual)
	}
	if after := r.running(t); after != before {
		t.Fatalf("the router is not as it was after the second rollback:\n%s", after)
	}
	r.waitSession(t, true)
}

func TestWrongHostKeyRefused(t *testing.T) {
	r := startRouter(t)
	other := keyPair(t, filepath.Join(r.dir, "other"))
	os.WriteFile(r.known, []byte(fmt.Sprintf("[%s]:%d %s\n", r.addr.Addr(), r.addr.Port(), other)), 0o600)
	before := r.running(t)
	_, err := r.act.Apply(t.Context(), cli.ShutNeighbor("br1", 64502, r.peer))
	if err == nil {
		t.Fatal("a router with another host key was configured")
	}
	if after := r.running(t); after != before {
		t.Fatal("the configuration changed")
	}
}
