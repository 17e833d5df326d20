package netlab

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestScenarios plays every scenario on one lab, in order: the real
// sdnoc daemon against FRR ISPs, real exporters and iperf3 traffic,
// judged on the routers and the interfaces. SDNOC_LAB_SCENARIOS=a,b
// plays only those; SDNOC_LAB_RESULTS=FILE writes the table there (as
// lab/RESULTS.md keeps it).
func TestScenarios(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 14*time.Minute)
	defer cancel()
	l := upLab(t, ctx)
	only := os.Getenv("SDNOC_LAB_SCENARIOS")
	var results []*Result
	for _, sc := range Scenarios() {
		if only != "" && !contains(only, sc.Name) {
			continue
		}
		t.Run(sc.Name, func(t *testing.T) {
			res := Play(ctx, l, sc)
			results = append(results, res)
			for _, f := range res.Figures {
				t.Logf("%s: %v", f.Name, f.Value)
			}
			for _, ln := range res.Lines {
				t.Log(ln)
			}
			if !res.Passed {
				t.Errorf("%s failed after %v: %s\nsdnoc's log:\n%s", sc.Name, res.Took, res.Failure, tail(l.Log("sdnoc"), 40))
			}
		})
	}
	if path := os.Getenv("SDNOC_LAB_RESULTS"); path != "" {
		if err := os.WriteFile(path, []byte(ResultsTable(results)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
