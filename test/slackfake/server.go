// Package slackfake is a Slack stand-in for drbot's tests: it speaks the Web
// API methods drbot uses and the Socket Mode WebSocket protocol, and is driven
// by the real github.com/slack-go/slack client:
//
//	srv := slackfake.New(t, slackfake.Options{})
//	api := slack.New(srv.BotToken(), slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken(srv.AppToken()))
//	sm := socketmode.New(api)
//	go sm.RunContext(ctx)
//	id, _ := srv.SlashCommand(ctx, "U1", "C1", "/dr", "status")
//	ack, _ := srv.WaitAck(ctx, id)
//
// The fake keeps state (channels, messages, threads, pins, ephemerals, views,
// files, response_url posts) so tests assert on what a user would see.
//
// Fidelity notes (where the fake knowingly differs from Slack):
//   - Bodies are checked as Slack documents them (channel names, Block Kit
//     limits, metadata JSON, trigger_id single use, response_url: 5 uses in 30
//     minutes by the Clock) but error texts are approximations.
//   - Channel arguments are IDs, except that chat.postMessage and
//     chat.postEphemeral also take a name, as in Slack.
//   - Membership is not enforced for posting; topic/purpose changes and joins
//     do not add system messages to the history.
//   - A bot token used where the app token belongs (or the reverse) gets
//     not_allowed_token_type, an unknown token invalid_auth.
//   - Envelopes are never redelivered on their own; use the Redelivery option.
//   - trigger_id expiry (3 s) is not checked, only single use.
//
// Any request the fake does not understand is answered with a 4xx, recorded
// in Unexpected, and fails the test at cleanup unless AllowUnexpected was
// called.
package slackfake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Options configure a Server. Zero values give the defaults.
type Options struct {
	BotToken string // default "xoxb-test"
	AppToken string // default "xapp-test"
	// PingInterval is how often WebSocket PING frames are sent (slack-go's
	// client reconnects when none arrive). Default 100ms.
	PingInterval time.Duration
	// Clock gives message timestamps, created times and response_url expiry.
	// Default time.Now. Ack latencies always use the real clock.
	Clock func() time.Time
}

// Call is one Web API request.
type Call struct {
	Method string // e.g. "chat.postMessage"
	Status int    // HTTP status
	Error  string // Slack error code when ok was false ("" on success)
	// Injected is true when the failure came from InjectFailures.
	Injected bool
	Time     time.Time // by the Clock
}

// Server is the Slack stand-in. All methods are safe for concurrent use.
type Server struct {
	t            testing.TB
	srv          *httptest.Server
	botToken     string
	appToken     string
	pingInterval time.Duration
	clock        func() time.Time
	upgrader     websocket.Upgrader
	wg           sync.WaitGroup // connection goroutines

	mu              sync.Mutex
	notify          chan struct{} // closed and replaced on every state change
	closed          bool
	lastTS          int64
	seq             int
	calls           []Call
	unexpected      []string
	allowUnexpected bool
	failures        *failureState

	users        map[string]*user
	userOrder    []string
	groups       map[string]*userGroup
	groupOrder   []string
	channels     map[string]*channel
	channelOrder []*channel
	ephemerals   map[string][]*message // by user
	files        map[string]*File
	fileOrder    []string
	uploads      map[string]string // upload secret -> file ID
	views        []*View
	triggers     map[string]*trigger
	responseURLs map[string]*responseURL
	responsePost []ResponseURLPost

	// Socket Mode
	tickets     map[string]bool // issued by apps.connections.open, single use
	conns       []*wsConn
	live        *wsConn
	connections int
	deliveries  []*delivery
	acks        []Ack
}

// New starts a Slack stand-in on loopback and stops it when the test ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{
		t:            t,
		botToken:     opts.BotToken,
		appToken:     opts.AppToken,
		pingInterval: opts.PingInterval,
		clock:        opts.Clock,
		notify:       make(chan struct{}),
		users:        map[string]*user{},
		groups:       map[string]*userGroup{},
		channels:     map[string]*channel{},
		ephemerals:   map[string][]*message{},
		files:        map[string]*File{},
		uploads:      map[string]string{},
		triggers:     map[string]*trigger{},
		responseURLs: map[string]*responseURL{},
		tickets:      map[string]bool{},
	}
	if s.botToken == "" {
		s.botToken = "xoxb-test"
	}
	if s.appToken == "" {
		s.appToken = "xapp-test"
	}
	if s.pingInterval <= 0 {
		s.pingInterval = 100 * time.Millisecond
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	// slack-go dials with Origin https://api.slack.com.
	s.upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

	mux := http.NewServeMux()
	mux.HandleFunc("/api/", s.serveWebAPI)
	mux.HandleFunc("/ws", s.serveWebSocket)
	mux.HandleFunc("/upload/v1/", s.serveUpload)
	mux.HandleFunc("/commands/", s.serveResponseURL)
	mux.HandleFunc("/actions/", s.serveResponseURL)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.unexpectedRequest(w, r, http.StatusNotFound, "no such endpoint")
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.close)
	return s
}

func (s *Server) close() {
	s.mu.Lock()
	s.closed = true
	conns := append([]*wsConn(nil), s.conns...)
	s.live = nil
	s.changed()
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	s.wg.Wait()
	s.srv.Close()

	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.unexpected) > 0 && !s.allowUnexpected {
		s.t.Errorf("slackfake: %d unexpected request(s):\n  %s", len(s.unexpected), strings.Join(s.unexpected, "\n  "))
	}
}

// APIURL is the base for slack.OptionAPIURL; it ends with "/".
func (s *Server) APIURL() string { return s.srv.URL + "/api/" }

// BotToken is the bot token the Web API accepts.
func (s *Server) BotToken() string { return s.botToken }

// AppToken is the app-level token apps.connections.open accepts.
func (s *Server) AppToken() string { return s.appToken }

// Calls returns every Web API call in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallCount counts the calls of one Web API method, failed ones included.
func (s *Server) CallCount(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c.Method == method {
			n++
		}
	}
	return n
}

// Unexpected returns a description of every request the fake did not understand.
func (s *Server) Unexpected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.unexpected...)
}

// AllowUnexpected stops unexpected requests from failing the test at cleanup,
// for tests that provoke them on purpose.
func (s *Server) AllowUnexpected() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allowUnexpected = true
}

// WaitFor blocks until cond returns true, re-checking after every state
// change of the fake (and every 50ms). cond must not hold locks of its own
// that the fake's accessors could wait on; calling the fake's accessors is fine.
func (s *Server) WaitFor(ctx context.Context, what string, cond func() bool) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		ch := s.notify
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
	}
}

// changed wakes every waiter. Callers hold s.mu.
func (s *Server) changed() {
	close(s.notify)
	s.notify = make(chan struct{})
}

func (s *Server) now() time.Time { return s.clock() }

// unexpectedf records a request the fake did not understand. Callers hold s.mu.
func (s *Server) unexpectedf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.unexpected = append(s.unexpected, msg)
	s.t.Logf("slackfake: unexpected: %s", msg)
	s.changed()
}

func (s *Server) unexpectedRequest(w http.ResponseWriter, r *http.Request, status int, why string) {
	s.mu.Lock()
	s.unexpectedf("%s %s: %s", r.Method, r.URL.Path, why)
	s.mu.Unlock()
	http.Error(w, "slackfake: "+why, status)
}

// newID returns an ID such as "C0FAKE0007". Callers hold s.mu.
func (s *Server) newID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s0FAKE%04d", prefix, s.seq)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newEnvelopeID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "slackfake: encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
