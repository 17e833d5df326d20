package edge

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminHandler serves the admin API: health for load balancers and sdnoc,
// metrics, and the drain that sdnoc's PoP-shift playbooks call.
func (p *Proxy) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if p.draining.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("draining\n"))
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.gather, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /drain", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, p.DrainStatus())
	})
	mux.HandleFunc("POST /drain", func(w http.ResponseWriter, r *http.Request) {
		d := p.cfg.DrainDeadline
		if v := r.URL.Query().Get("deadline"); v != "" {
			var err error
			if d, err = time.ParseDuration(v); err != nil || d <= 0 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "deadline: " + v + " is not a positive duration; write e.g. 30s"})
				return
			}
		}
		writeJSON(w, http.StatusAccepted, p.Drain(d))
	})
	mux.HandleFunc("POST /undrain", func(w http.ResponseWriter, r *http.Request) {
		if err := p.Undrain(r.Context()); err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, p.DrainStatus())
	})
	mux.HandleFunc("GET /inspection", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, p.guard.Status())
	})
	mux.HandleFunc("GET /sites", func(w http.ResponseWriter, r *http.Request) {
		type siteView struct {
			Name    string   `json:"name"`
			File    string   `json:"file"`
			SHA256  string   `json:"sha256"`
			Hosts   []string `json:"hosts"`
			Origins []string `json:"origins"`
		}
		out := struct {
			Sites    []siteView        `json:"sites"`
			AsOf     time.Time         `json:"as_of,omitzero"`
			Rejected map[string]string `json:"rejected,omitempty"`
		}{Sites: []siteView{}}
		if p.sites != nil {
			set := p.sites()
			out.AsOf = set.AsOf
			for _, s := range set.Sites {
				v := siteView{Name: s.Name, File: s.File, SHA256: s.SHA256, Hosts: s.Hosts}
				for _, o := range s.Origins {
					v.Origins = append(v.Origins, o.Address)
				}
				out.Sites = append(out.Sites, v)
			}
			if len(set.Rejected) > 0 {
				out.Rejected = map[string]string{}
				for f, err := range set.Rejected {
					out.Rejected[f] = err.Error()
				}
			}
		}
		writeJSON(w, http.StatusOK, out)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
