package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/state"
)

// bbolt lets one process hold the state file, so while `drbot serve` runs,
// `drbot state …` reaches the state through the serving process instead:
// a Unix socket beside the state file, readable by its owner only.

func adminSocket(statePath string) string { return statePath + ".sock" }

// breakGlasser carries out `drbot run` actions with the serving drbot's
// engine, policy and Slack code (bot.Bot).
type breakGlasser interface {
	BreakGlass(ctx context.Context, req bot.BreakGlassRequest) (string, error)
}

// serveAdmin answers state commands for other drbot processes on the
// same machine until ctx ends.
func serveAdmin(ctx context.Context, store *state.Store) (func(), error) {
	return serveAdminWith(ctx, store, nil)
}

// serveAdminWith also answers `drbot run` when bg is set.
func serveAdminWith(ctx context.Context, store *state.Store, bg breakGlasser) (func(), error) {
	path := adminSocket(store.Path())
	_ = os.Remove(path)         // a socket left by a killed drbot
	old := syscall.Umask(0o077) // the socket is born owner-only, not chmod-ed after the fact
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listening on admin socket %q: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("restricting admin socket %q: %w", path, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /inspect", func(w http.ResponseWriter, r *http.Request) {
		respond(w, inspect(store, r.URL.Query().Get("run"), w))
	})
	mux.HandleFunc("GET /audit", func(w http.ResponseWriter, r *http.Request) {
		respond(w, audit(store, r.URL.Query().Get("run"), w))
	})
	mux.HandleFunc("GET /history", func(w http.ResponseWriter, r *http.Request) {
		respond(w, writeHistory(store, nil, w))
	})
	mux.HandleFunc("GET /postmortem", func(w http.ResponseWriter, r *http.Request) {
		respond(w, writePostmortem(store, nil, r.URL.Query().Get("run"), w))
	})
	mux.HandleFunc("POST /backup", func(w http.ResponseWriter, r *http.Request) {
		dst := r.URL.Query().Get("path")
		n, err := store.Backup(dst)
		if err == nil {
			_, err = fmt.Fprintf(w, "backed up %s to %s (%d bytes, hot copy by the running drbot)\n", store.Path(), dst, n)
		}
		respond(w, err)
	})
	if bg != nil {
		mux.HandleFunc("POST /run", func(w http.ResponseWriter, r *http.Request) { serveBreakGlass(w, r, bg) })
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	stop := func() { _ = srv.Close(); _ = os.Remove(path) }
	go func() { <-ctx.Done(); stop() }()
	return stop, nil
}

func respond(w http.ResponseWriter, err error) {
	if err != nil {
		// Headers may be sent already; a trailer line is what the client sees.
		fmt.Fprintf(w, "\nERROR: %v\n", err)
	}
}

// serveBreakGlass carries out one `drbot run` action: 200 and the answer
// when it was done, else 403 (unknown operator) or 409 and why not.
func serveBreakGlass(w http.ResponseWriter, r *http.Request, bg breakGlasser) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	f := r.PostForm
	req := bot.BreakGlassRequest{As: f.Get("as"), Action: f.Get("action"), Target: f.Get("target"), Drill: f.Get("drill") == "true",
		RunID: f.Get("run"), StepID: f.Get("step"), Reason: f.Get("reason"), Confirm: f.Get("confirm")}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	text, err := bg.BreakGlass(ctx, req)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch {
	case errors.Is(err, bot.ErrUnknownOperator):
		w.WriteHeader(http.StatusForbidden)
		text = err.Error()
	case err != nil:
		w.WriteHeader(http.StatusConflict)
		text = err.Error()
	}
	fmt.Fprintln(w, text)
}

// adminClient talks to the serving drbot over its admin socket.
func adminClient(statePath string) *http.Client {
	sock := adminSocket(statePath)
	return &http.Client{
		Timeout: 3 * time.Minute,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}},
	}
}

// viaAdmin runs a state command through the serving drbot.
func viaAdmin(statePath, method, op string, query url.Values, out io.Writer) error {
	req, err := http.NewRequest(method, "http://drbot/"+op+"?"+query.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := adminClient(statePath).Do(req)
	if err != nil {
		return fmt.Errorf("the state file is held by a running drbot, and its admin socket %s does not answer: %w", adminSocket(statePath), err)
	}
	defer resp.Body.Close()
	_, err = io.Copy(out, resp.Body)
	return err
}

// withStoreOrAdmin opens the state directly, or, when a serving drbot
// holds it, asks that drbot.
func withStoreOrAdmin(path, method, op string, query url.Values, out io.Writer, direct func(*state.Store) error) error {
	s, err := state.Open(path, state.Options{ReadOnly: true})
	if errors.Is(err, state.ErrLocked) {
		return viaAdmin(path, method, op, query, out)
	}
	if err != nil {
		return err
	}
	defer s.Close()
	return direct(s)
}
