package sites

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var parseCases = map[string]struct {
	yaml string
	errs []string // each must appear in the error; none: valid
}{
	"minimal": {yaml: "hosts: [shop.example.com]\norigins: [{address: 10.1.0.10:8080}]\n"},
	"full": {yaml: `hosts: [shop.example.com, "*.cdn.example.com"]
listen: ["127.0.0.1:9443"]
origins:
  - address: origin.internal:8080
    weight: 3
pool: {origin_keepalive: 60s, idle_timeout: 30s, warm: 4, max_idle: 10, dial_timeout: 1s, liveness_check: false, retry: false}
health_check: {path: /healthz, interval: 1s, timeout: 500ms, rise: 1, fall: 2, expect_status: "200-299"}
upload: {early_response: abort, linger: 2s}
timeouts: {response_header: 10s, client_idle: 30s}
rules:
  - {name: no-admin, path: "^/admin"}
  - {name: ua, header: {name: User-Agent, pattern: sqlmap}, action: allow, status: 451}
access_log: false
`},
	"empty":             {yaml: "", errs: []string{"(file): the file is empty"}},
	"not yaml":          {yaml: "hosts: [", errs: []string{"(file):"}},
	"unknown key":       {yaml: "hosts: [a.example]\norigins: [{address: 10.0.0.1:80}]\norigin: x\n", errs: []string{"(file): line 3: field origin not found"}},
	"missing":           {yaml: "access_log: true\n", errs: []string{"hosts: missing", "origins: missing"}},
	"bad host":          {yaml: "hosts: [Shop.example, 'a b', x.example, x.example]\norigins: [{address: 10.0.0.1:80}]\n", errs: []string{"hosts[0]: \"Shop.example\" has upper case", "hosts[1]: \"a b\" is not a host name", "hosts[3]: \"x.example\" is listed twice"}},
	"bad address":       {yaml: "hosts: [a.example]\norigins: [{address: \"10.0.0.300:80\"}, {address: \"10.0.0.1\"}, {address: 10.0.0.1:99999}]\n", errs: []string{"origins[0].address: \"10.0.0.300:80\" is not host:port", "origins[1].address", "origins[2].address"}},
	"idle above origin": {yaml: "hosts: [a.example]\norigins: [{address: 10.0.0.1:80}]\npool: {origin_keepalive: 2s, idle_timeout: 5s}\n", errs: []string{"pool.idle_timeout: 5s is not below origin_keepalive (2s)", "seed 002"}},
	"bad duration":      {yaml: "hosts: [a.example]\norigins: [{address: 10.0.0.1:80}]\ntimeouts: {response_header: 10}\n", errs: []string{"timeouts.response_header: \"10\" is not a duration"}},
	"bad weight":        {yaml: "hosts: [a.example]\norigins: [{address: 10.0.0.1:80, weight: 0}]\n", errs: []string{"origins[0].weight: 0 is outside 1..100"}},
	"bad early":         {yaml: "hosts: [a.example]\norigins: [{address: 10.0.0.1:80}]\nupload: {early_response: close}\n", errs: []string{"upload.early_response: \"close\" is not relay or abort"}},
	"bad rules":         {yaml: "hosts: [a.example]\norigins: [{address: 10.0.0.1:80}]\nrules: [{name: a, path: \"(\"}, {name: a, method: GET, status: 200}, {path: /x}, {name: c}]\n", errs: []string{"rules[0].path: \"(\" is not a Go regexp", "rules[1].name: \"a\" is used by another rule", "rules[1].status: 200", "rules[2].name: missing", "rules[3]: matches every request"}},
	"bad health":        {yaml: "hosts: [a.example]\norigins: [{address: 10.0.0.1:80}]\nhealth_check: {path: healthz, interval: 1s, timeout: 2s, expect_status: 600}\n", errs: []string{"health_check.path", "health_check.timeout: 2s is above the interval", "health_check.expect_status"}},
	"bad listen":        {yaml: "hosts: [a.example]\norigins: [{address: 10.0.0.1:80}]\nlisten: [\"example.com:443\"]\n", errs: []string{"listen[0]"}},
	"tls missing key":   {yaml: "hosts: [a.example]\norigins: [{address: 10.0.0.1:80}]\ntls: {cert: c.pem}\n", errs: []string{"tls: needs both cert and key"}},
	"tls no files":      {yaml: "hosts: [a.example]\norigins: [{address: 10.0.0.1:80}]\ntls: {cert: c.pem, key: k.pem}\n", errs: []string{"tls: cannot load"}},
}

func TestParse(t *testing.T) {
	for name, tc := range parseCases {
		t.Run(name, func(t *testing.T) {
			s, err := Parse("sites/shop.yaml", []byte(tc.yaml))
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if s.Name != "shop" || len(s.Origins) == 0 || s.Pool.IdleTimeout >= s.Pool.OriginKeepAlive {
					t.Fatalf("parsed %+v", s)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted %q", tc.yaml)
			}
			for _, want := range tc.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
			for line := range strings.SplitSeq(err.Error(), "\n") {
				if !strings.HasPrefix(line, "sites/shop.yaml: ") {
					t.Errorf("line does not name the file: %q", line)
				}
			}
		})
	}
}

func TestParseDefaults(t *testing.T) {
	s, err := Parse("x/api.yml", []byte("hosts: [\"*.api.example\"]\norigins: [{address: 127.0.0.1:9101}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Pool{OriginKeepAlive: 5 * time.Second, IdleTimeout: 3750 * time.Millisecond, Warm: 2, MaxIdle: 64, DialTimeout: 2 * time.Second, LivenessCheck: true, Retry: true}
	if s.Name != "api" || s.Pool != want || s.Upload.EarlyResponse != "relay" || s.Origins[0].Weight != 1 || !s.AccessLog {
		t.Fatalf("defaults: %+v", s)
	}
	if !s.Matches("v1.api.example") || s.Matches("api.example") || s.Matches("a.b.api.example") {
		t.Fatal("wildcard matching")
	}
}

func TestParseTLS(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir, "shop.example")
	s, err := Parse(filepath.Join(dir, "shop.yaml"), []byte("hosts: [shop.example]\norigins: [{address: 10.0.0.1:80}]\ntls: {cert: cert.pem, key: key.pem}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.TLS == nil || len(s.TLS.Certificate.Certificate) != 1 || s.TLS.CertFile != filepath.Join(dir, "cert.pem") {
		t.Fatalf("tls: %+v", s.TLS)
	}
}

func writeCert(t *testing.T, dir, name string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
}

// FuzzParse: any bytes give a valid site or an error naming the file,
// never a panic; an accepted site keeps its invariants.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.yaml))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml: ") {
				t.Fatalf("error without the file: %v", err)
			}
			return
		}
		if len(s.Hosts) == 0 || len(s.Origins) == 0 || s.Pool.IdleTimeout >= s.Pool.OriginKeepAlive || s.Pool.MaxIdle < s.Pool.Warm ||
			s.HealthCheck.Timeout > s.HealthCheck.Interval || (s.Upload.EarlyResponse != "relay" && s.Upload.EarlyResponse != "abort") {
			t.Fatalf("accepted a site that breaks its invariants: %+v", s)
		}
		for _, o := range s.Origins {
			if o.Weight < 1 || o.Weight > 100 {
				t.Fatalf("weight %d", o.Weight)
			}
		}
	})
}
