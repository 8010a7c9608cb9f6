package world

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"testing"
)

// Harness stands in for testing.TB outside `go test` (drbot sandbox, the
// bench command), so the stand-ins run unchanged. Fatal ends the calling
// goroutine like in a test; Errorf from a stand-in's handler is recorded
// and logged. Close runs the cleanups, last registered first.
type Harness struct {
	// testing.TB is embedded only to satisfy its unexported method; every
	// method the stand-ins use is implemented below.
	testing.TB

	name string
	log  io.Writer
	dir  string

	mu       sync.Mutex
	cleanups []func()
	errs     []string
	fatal    chan string
}

// NewHarness logs to log (io.Discard for silence) and keeps temporary
// directories under dir (a new one in os.TempDir() when empty).
func NewHarness(name string, log io.Writer, dir string) (*Harness, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "drbot-"+name+"-")
		if err != nil {
			return nil, err
		}
		dir = d
	}
	return &Harness{name: name, log: log, dir: dir, fatal: make(chan string, 1)}, nil
}

// Go runs fn as a test body would run: a Fatal inside it stops fn and
// comes back as the error.
func (h *Harness) Go(fn func()) error {
	done := make(chan struct{})
	var msg string
	go func() {
		defer close(done)
		defer func() {
			select {
			case m := <-h.fatal:
				msg = m
			default:
			}
		}()
		fn()
	}()
	<-done
	if msg != "" {
		return fmt.Errorf("%s", msg)
	}
	return nil
}

// Dir is where the harness keeps its temporary directories.
func (h *Harness) Dir() string { return h.dir }

// Errors are what stand-ins reported with Errorf.
func (h *Harness) Errors() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.errs...)
}

// Close runs the cleanups, last first.
func (h *Harness) Close() {
	h.mu.Lock()
	fns := h.cleanups
	h.cleanups = nil
	h.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

func (h *Harness) Helper()      {}
func (h *Harness) Name() string { return h.name }

func (h *Harness) Cleanup(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleanups = append(h.cleanups, f)
}

func (h *Harness) TempDir() string {
	d, err := os.MkdirTemp(h.dir, "tmp-")
	if err != nil {
		h.Fatalf("harness: temporary directory: %v", err)
	}
	return d
}

func (h *Harness) Setenv(key, value string) {
	if err := os.Setenv(key, value); err != nil {
		h.Fatalf("harness: setenv %s: %v", key, err)
	}
}

func (h *Harness) Log(args ...any)                 { fmt.Fprintln(h.log, args...) }
func (h *Harness) Logf(format string, args ...any) { fmt.Fprintf(h.log, format+"\n", args...) }

func (h *Harness) Error(args ...any) { h.Errorf("%s", fmt.Sprint(args...)) }
func (h *Harness) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	h.mu.Lock()
	h.errs = append(h.errs, msg)
	h.mu.Unlock()
	fmt.Fprintln(h.log, "error:", msg)
}

func (h *Harness) Fail()        { h.Errorf("failed") }
func (h *Harness) Failed() bool { return len(h.Errors()) > 0 }

func (h *Harness) Fatal(args ...any) { h.Fatalf("%s", fmt.Sprint(args...)) }
func (h *Harness) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	h.Errorf("%s", msg)
	select {
	case h.fatal <- msg:
	default:
	}
	runtime.Goexit()
}
func (h *Harness) FailNow() { h.Fatalf("failed") }

func (h *Harness) Skip(args ...any)                 { h.Fatalf("skipped: %s", fmt.Sprint(args...)) }
func (h *Harness) Skipf(format string, args ...any) { h.Fatalf("skipped: "+format, args...) }
func (h *Harness) SkipNow()                         { h.Fatalf("skipped") }
func (h *Harness) Skipped() bool                    { return false }
