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

	"github.com/drbot/drbot/state"
)

// bbolt lets one process hold the state file, so while `drbot serve` runs,
// `drbot state …` reaches the state through the serving process instead:
// a Unix socket beside the state file, readable by its owner only.

func adminSocket(statePath string) string { return statePath + ".sock" }

// serveAdmin answers state commands for other drbot processes on the
// same machine until ctx ends.
func serveAdmin(ctx context.Context, store *state.Store) (func(), error) {
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

// viaAdmin runs a state command through the serving drbot.
func viaAdmin(statePath, method, op string, query url.Values, out io.Writer) error {
	sock := adminSocket(statePath)
	client := &http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}},
	}
	req, err := http.NewRequest(method, "http://drbot/"+op+"?"+query.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("the state file is held by a running drbot, and its admin socket %s does not answer: %w", sock, err)
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
