package probes

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	link := LinkConfig{ID: "pop1/isp1", Local: "127.0.0.1", Targets: []string{"127.0.0.1:862"}}
	valid := DefaultConfig()
	valid.Links = []LinkConfig{link}
	for _, tt := range []struct {
		name   string
		change func(*Config)
		want   []string // in the error, one per bad field; none: valid
	}{
		{"defaults with a link", func(*Config) {}, nil},
		{"IPv6 and dual-stack", func(c *Config) {
			c.Links = []LinkConfig{{ID: "v6", Local: "::1", Targets: []string{"[::1]:862"}}, {ID: "any", Targets: []string{"127.0.0.1:862"}}}
		}, nil},
		{"no links", func(c *Config) { c.Links = nil }, []string{"links: none"}},
		{"zero durations", func(c *Config) { c.Interval, c.Timeout, c.Window = 0, 0, 0 },
			[]string{"interval: 0s is below 1ms", "timeout: 0s is not positive"}},
		{"window shorter than interval", func(c *Config) { c.Window = 50 * time.Millisecond },
			[]string{"window: 50ms is shorter than the interval"}},
		{"too many outstanding", func(c *Config) { c.Timeout = time.Hour },
			[]string{"timeout: 1h0m0s is more than 1000 intervals"}},
		{"bad link", func(c *Config) {
			c.Links = []LinkConfig{link, {Local: "eth0", Targets: []string{"example.com:862", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:862", "127.0.0.1:862"}}}
		}, []string{
			"links[1].id: empty", `links[1].local: "eth0" is not an IP address`,
			`links[1].targets[0]: "example.com:862" is not IP:port`, `links[1].targets[1]: "127.0.0.1" is not IP:port`,
			`links[1].targets[2]: "127.0.0.1:0" is not IP:port`, `links[1].targets[4]: "127.0.0.1:862" is also targets[3]`,
		}},
		{"mapped duplicate", func(c *Config) { c.Links[0].Targets = []string{"127.0.0.1:862", "[::ffff:127.0.0.1]:862"} },
			[]string{"links[0].targets[1]"}},
		{"no targets, duplicate id", func(c *Config) { c.Links = []LinkConfig{link, {ID: link.ID}} },
			[]string{"links[1].targets: none", `links[1].id: "pop1/isp1" is also links[0].id`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			c.Links = append([]LinkConfig(nil), valid.Links...)
			tt.change(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q; want it to contain %q", err, w)
				}
			}
			if got := strings.Count(err.Error(), "\n") + 1; got != len(tt.want) {
				t.Errorf("Validate() gave %d lines, want %d:\n%v", got, len(tt.want), err)
			}
		})
	}
}

func TestReflectorConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		listen string
		ok     bool
	}{
		{DefaultReflectorConfig().Listen, true},
		{"127.0.0.1:0", true},
		{"[::1]:862", true},
		{"127.0.0.1", false},
		{":stamp", false},
		{":70000", false},
	} {
		if err := (ReflectorConfig{Listen: tt.listen}).Validate(); (err == nil) != tt.ok {
			t.Errorf("Validate(%q) = %v, want ok %v", tt.listen, err, tt.ok)
		}
	}
}
