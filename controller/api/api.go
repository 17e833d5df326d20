// Package api is the daemon's HTTP/JSON API, the NOC's way in: what sdnoc
// sees (links with their state and evidence, desired against applied
// publication, the journal, the active playbooks, health) and the manual
// levers (plan, apply and release playbooks). It serves on a Unix socket,
// guarded by the file's permissions, and, when configured, on TCP with a
// bearer token; a request without the token is refused (401) and logged.
// Every write is audited in the journal by the controller: who (the
// playbook's author), why, and via which client.
//
// Client is the other end, for `sdnoc status` and `sdnoc playbook`.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sdnoc/sdnoc/actuators/cli"
	"github.com/sdnoc/sdnoc/controller"
	"github.com/sdnoc/sdnoc/decisions"
	"github.com/sdnoc/sdnoc/journal"
	"github.com/sdnoc/sdnoc/playbooks"
)

// Controller is what the API serves; *controller.Controller is one.
type Controller interface {
	Health() error
	Status() []decisions.LinkStatus
	Alerts() []decisions.Alert
	Publications(ctx context.Context) ([]decisions.Publication, error)
	Overrides() []journal.Manual
	Records(after uint64, limit int) ([]journal.Record, error)
	PlanPlaybook(ctx context.Context, pb *playbooks.Playbook) (controller.Plan, error)
	ApplyPlaybook(ctx context.Context, pb *playbooks.Playbook, via string) (controller.Plan, error)
	Release(ctx context.Context, id string, a journal.Audit) error
	ChangeRouter(ctx context.Context, ch cli.Change, a journal.Audit) (cli.Result, error)
	RouterRunning(ctx context.Context, name string) (string, error)
}

// RouterChange is the body of POST /v1/routers/{name}/change: commands
// entered in configuration mode, what the configuration must then hold
// (expect) or not (absent), and who asks why.
type RouterChange struct {
	Commands []string `json:"commands"`
	Expect   []string `json:"expect,omitempty"`
	Absent   []string `json:"absent,omitempty"`
	Author   string   `json:"author"`
	Reason   string   `json:"reason"`
}

// RouterResult is the answer to a router change.
type RouterResult struct {
	Result cli.Result `json:"result"`
	Error  string     `json:"error,omitempty"`
}

// Status is GET /v1/status: everything `sdnoc status` shows.
type Status struct {
	Topology  string                 `json:"topology"`
	At        time.Time              `json:"at"`
	Health    string                 `json:"health"` // "ok" or why not
	Links     []decisions.LinkStatus `json:"links"`
	Alerts    []decisions.Alert      `json:"alerts"`
	Overrides []journal.Manual       `json:"overrides"`
}

// Release is the body of POST /v1/overrides/{name}/release.
type Release struct {
	Author string `json:"author"`
	Reason string `json:"reason"`
}

// Error is the body of every error response.
type Error struct {
	Error string           `json:"error"`
	Plan  *controller.Plan `json:"plan,omitempty"` // a refused playbook's plan
}

// Config is how the API is served.
type Config struct {
	// TokenFile holds the bearer token TCP clients must send; required
	// to serve on TCP, unused on a Unix socket.
	TokenFile string
	// Topology names the network in Status.
	Topology string
}

// Deps are the API's dependencies.
type Deps struct {
	Log        *slog.Logger // nil: discard
	Controller Controller
	Now        func() time.Time // nil: time.Now
}

// Server serves the API.
type Server struct {
	cfg   Config
	deps  Deps
	token []byte
}

// New reads the token file, if any. A token file that is empty, or that
// others than its owner may read, is refused.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Controller == nil {
		return nil, errors.New("api: no controller")
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	s := &Server{cfg: cfg, deps: deps}
	if cfg.TokenFile != "" {
		t, err := ReadToken(cfg.TokenFile)
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("token file %s: mode %v lets others read it; chmod 600 %s", cfg.TokenFile, fi.Mode().Perm(), cfg.TokenFile)
		}
		s.token = []byte(t)
	}
	return s, nil
}

// ReadToken reads a bearer token: the file's first line, trimmed.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	t, _, _ := strings.Cut(string(b), "\n")
	t = strings.TrimSpace(t)
	if t == "" {
		return "", fmt.Errorf("token file %s is empty; write a long random token in it, e.g. openssl rand -hex 32 > %s", path, path)
	}
	return t, nil
}

type viaKey struct{}

// Serve serves the API on ln until ctx ends. On a TCP listener every
// request needs the bearer token; New must have read one.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	_, unix := ln.Addr().(*net.UnixAddr)
	if !unix && s.token == nil {
		return fmt.Errorf("api on %s: TCP needs a token file (--api-token-file)", ln.Addr())
	}
	srv := &http.Server{
		Handler:           s.handler(!unix),
		ReadHeaderTimeout: 5 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, viaKey{}, via(c))
		},
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// via names the client of a connection for the audit: the uid and pid
// of a Unix socket peer (SO_PEERCRED), the address of a TCP one.
func via(c net.Conn) string {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return "tcp " + c.RemoteAddr().String()
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return "unix"
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return "unix"
	}
	return fmt.Sprintf("unix uid %d pid %d", cred.Uid, cred.Pid)
}

func (s *Server) handler(tcp bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", s.health)
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/links", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, s.deps.Controller.Status()) })
	mux.HandleFunc("GET /v1/publication", func(w http.ResponseWriter, r *http.Request) {
		pubs, err := s.deps.Controller.Publications(r.Context())
		if err != nil {
			reply(w, http.StatusServiceUnavailable, Error{Error: err.Error()})
			return
		}
		reply(w, http.StatusOK, pubs)
	})
	mux.HandleFunc("GET /v1/overrides", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, http.StatusOK, s.deps.Controller.Overrides())
	})
	mux.HandleFunc("GET /v1/journal", s.journal)
	mux.HandleFunc("POST /v1/playbooks/plan", s.playbook(false))
	mux.HandleFunc("POST /v1/playbooks/apply", s.playbook(true))
	mux.HandleFunc("POST /v1/overrides/{name}/release", s.release)
	mux.HandleFunc("POST /v1/routers/{name}/change", s.routerChange)
	mux.HandleFunc("GET /v1/routers/{name}/running", s.routerRunning)
	if !tcp {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), s.token) != 1 {
			s.deps.Log.Warn("api request refused: no valid bearer token", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
			w.Header().Set("WWW-Authenticate", `Bearer realm="sdnoc"`)
			reply(w, http.StatusUnauthorized, Error{Error: "a bearer token is required (Authorization: Bearer TOKEN)"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	if err := s.deps.Controller.Health(); err != nil {
		reply(w, http.StatusServiceUnavailable, Error{Error: err.Error()})
		return
	}
	reply(w, http.StatusOK, map[string]string{"health": "ok"})
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	st := Status{Topology: s.cfg.Topology, At: s.deps.Now(), Health: "ok", Links: s.deps.Controller.Status(),
		Alerts: s.deps.Controller.Alerts(), Overrides: s.deps.Controller.Overrides()}
	if err := s.deps.Controller.Health(); err != nil {
		st.Health = err.Error()
	}
	reply(w, http.StatusOK, st)
}

func (s *Server) journal(w http.ResponseWriter, r *http.Request) {
	after, limit := uint64(0), 100
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			reply(w, http.StatusBadRequest, Error{Error: fmt.Sprintf("after=%q: want a sequence number", v)})
			return
		}
		after = n
	}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			reply(w, http.StatusBadRequest, Error{Error: fmt.Sprintf("limit=%q: want 1 to 10000", v)})
			return
		}
		limit = n
	}
	recs, err := s.deps.Controller.Records(after, limit)
	if err != nil {
		reply(w, http.StatusInternalServerError, Error{Error: err.Error()})
		return
	}
	if recs == nil {
		recs = []journal.Record{}
	}
	reply(w, http.StatusOK, recs)
}

// maxBody bounds a request body: a playbook is a few hundred bytes.
const maxBody = 1 << 20

func (s *Server) playbook(apply bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var pb playbooks.Playbook
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&pb); err != nil {
			reply(w, http.StatusBadRequest, Error{Error: "playbook: " + err.Error()})
			return
		}
		// The client parsed the file; check again, the daemon trusts no one.
		if err := pb.Check(); err != nil {
			reply(w, http.StatusBadRequest, Error{Error: err.Error()})
			return
		}
		via, _ := r.Context().Value(viaKey{}).(string)
		var (
			p   controller.Plan
			err error
		)
		if apply {
			p, err = s.deps.Controller.ApplyPlaybook(r.Context(), &pb, via)
		} else {
			p, err = s.deps.Controller.PlanPlaybook(r.Context(), &pb)
		}
		switch {
		case errors.Is(err, controller.ErrRefused):
			reply(w, http.StatusConflict, Error{Error: err.Error(), Plan: &p})
		case errors.Is(err, decisions.ErrConflict):
			reply(w, http.StatusConflict, Error{Error: err.Error()})
		case errors.Is(err, controller.ErrNotRunning):
			reply(w, http.StatusServiceUnavailable, Error{Error: err.Error()})
		case err != nil:
			reply(w, http.StatusUnprocessableEntity, Error{Error: err.Error()})
		default:
			reply(w, http.StatusOK, p)
		}
	}
}

func (s *Server) release(w http.ResponseWriter, r *http.Request) {
	var rel Release
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&rel); err != nil {
		reply(w, http.StatusBadRequest, Error{Error: "release: " + err.Error()})
		return
	}
	if strings.TrimSpace(rel.Author) == "" || strings.TrimSpace(rel.Reason) == "" {
		reply(w, http.StatusBadRequest, Error{Error: "release: author and reason are required; they go in the journal"})
		return
	}
	via, _ := r.Context().Value(viaKey{}).(string)
	err := s.deps.Controller.Release(r.Context(), r.PathValue("name"), journal.Audit{Author: rel.Author, Reason: rel.Reason, Via: via, Playbook: r.PathValue("name")})
	switch {
	case errors.Is(err, controller.ErrNotRunning):
		reply(w, http.StatusServiceUnavailable, Error{Error: err.Error()})
	case err != nil:
		reply(w, http.StatusNotFound, Error{Error: err.Error()})
	default:
		reply(w, http.StatusOK, map[string]string{"released": r.PathValue("name")})
	}
}

func (s *Server) routerChange(w http.ResponseWriter, r *http.Request) {
	var rc RouterChange
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rc); err != nil {
		reply(w, http.StatusBadRequest, Error{Error: "router change: " + err.Error()})
		return
	}
	if strings.TrimSpace(rc.Author) == "" || strings.TrimSpace(rc.Reason) == "" || len(rc.Commands) == 0 {
		reply(w, http.StatusBadRequest, Error{Error: "router change: commands, author and reason are required; the journal keeps them"})
		return
	}
	for _, c := range rc.Commands {
		if strings.ContainsAny(c, "\r\n") {
			reply(w, http.StatusBadRequest, Error{Error: fmt.Sprintf("router change: command %q holds a line break; send one command a line", c)})
			return
		}
	}
	via, _ := r.Context().Value(viaKey{}).(string)
	name := r.PathValue("name")
	res, err := s.deps.Controller.ChangeRouter(r.Context(), cli.Change{Router: name, Commands: rc.Commands, Expect: rc.Expect, Absent: rc.Absent},
		journal.Audit{Author: rc.Author, Reason: rc.Reason, Via: via})
	switch {
	case errors.Is(err, controller.ErrNoRouters):
		reply(w, http.StatusNotFound, Error{Error: err.Error()})
	case err != nil:
		reply(w, http.StatusBadGateway, RouterResult{Result: res, Error: err.Error()})
	default:
		reply(w, http.StatusOK, RouterResult{Result: res})
	}
}

func (s *Server) routerRunning(w http.ResponseWriter, r *http.Request) {
	text, err := s.deps.Controller.RouterRunning(r.Context(), r.PathValue("name"))
	switch {
	case errors.Is(err, controller.ErrNoRouters):
		reply(w, http.StatusNotFound, Error{Error: err.Error()})
	case err != nil:
		reply(w, http.StatusBadGateway, Error{Error: err.Error()})
	default:
		reply(w, http.StatusOK, map[string]string{"router": r.PathValue("name"), "running": text})
	}
}
