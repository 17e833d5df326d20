package telemetry

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sdnoc/sdnoc/gnmiagent"
	"github.com/sdnoc/sdnoc/internal/starttest"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "agent"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// TestTLS: a collector that skips verification reads a TLS agent; one
// that verifies against the system roots, and one that speaks plain
// gRPC, do not, and say so with Known=false.
func TestTLS(t *testing.T) {
	root := t.TempDir()
	eth1 := &fakeIf{root: root, name: "eth1", oper: "up"}
	src := eth1.rates(t, 1000, 1000)
	cfg := gnmiagent.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.SysfsRoot = root
	cfg.TLSCert, cfg.TLSKey = selfSigned(t, t.TempDir())
	a, err := gnmiagent.New(cfg, gnmiagent.Deps{Interfaces: src, Neighbors: neighbors{}})
	if err != nil {
		t.Fatal(err)
	}
	starttest.Start(t, a)

	const iv = 100 * time.Millisecond
	tests := []struct {
		name                 string
		insecure, skipVerify bool
		wantKnown            bool
	}{
		{"skip verify", false, true, true},
		{"verify", false, false, false},
		{"plain grpc", true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := samples{ch: make(chan Sample, 64)}
			c, err := New(Config{Interval: iv, Routers: []RouterConfig{{
				Name: "r1", Address: a.Addr().String(), Insecure: tt.insecure, SkipVerify: tt.skipVerify,
				Links: map[string]LinkMap{"pop1/isp1": {Interface: "eth1", Capacity: 1e6}},
			}}}, Deps{Reg: prometheus.NewPedanticRegistry(), OnSample: s.on})
			if err != nil {
				t.Fatal(err)
			}
			starttest.Start(t, c)
			if tt.wantKnown {
				s.next(t, 5*time.Second, "known over TLS", func(x Sample) bool { return x.Known })
				return
			}
			for range 10 {
				if x := s.next(t, time.Second, "", func(Sample) bool { return true }); x.Known {
					t.Fatalf("known sample %+v", x)
				}
			}
		})
	}
}
