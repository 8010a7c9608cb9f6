package terraform

import (
	"strings"
	"sync"
	"time"
)

// coalescer turns a stream of output into at most one posted line per
// interval: the first line goes out at once, later ones replace each other
// until the interval has passed, and Close posts the last one held back,
// so a thread sees the pace of the work without a flood. Terraform's
// closing summary ("Apply complete! …") and errors always go out; the
// outputs listed after the summary do not (they are journaled instead).
type coalescer struct {
	every time.Duration
	post  func(string)

	mu       sync.Mutex
	partial  string
	pending  string
	lastPost time.Time
	muted    bool // after "Outputs:"
	done     chan struct{}
	wg       sync.WaitGroup
}

func newCoalescer(every time.Duration, post func(string)) *coalescer {
	c := &coalescer{every: every, post: post, done: make(chan struct{})}
	c.wg.Add(1)
	go c.tick()
	return c
}

func (c *coalescer) tick() {
	defer c.wg.Done()
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			c.mu.Lock()
			if c.pending != "" && time.Since(c.lastPost) >= c.every {
				c.flushLocked()
			}
			c.mu.Unlock()
		}
	}
}

// Write implements io.Writer; complete lines are considered, a trailing
// partial line waits for its newline (or Close).
func (c *coalescer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data := c.partial + string(p)
	lines := strings.Split(data, "\n")
	c.partial = lines[len(lines)-1]
	for _, l := range lines[:len(lines)-1] {
		c.addLocked(l)
	}
	return len(p), nil
}

func (c *coalescer) addLocked(line string) {
	line = strings.TrimSpace(line)
	if line == "" || c.muted {
		return
	}
	if line == "Outputs:" {
		c.muted = true
		return
	}
	c.pending = line
	if time.Since(c.lastPost) >= c.every || important(line) {
		c.flushLocked()
	}
}

func (c *coalescer) flushLocked() {
	line := c.pending
	c.pending = ""
	c.lastPost = time.Now()
	c.post(line)
}

// Close stops the ticker and posts what is still held back.
func (c *coalescer) Close() {
	close(c.done)
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.partial != "" {
		c.addLocked(c.partial)
		c.partial = ""
	}
	if c.pending != "" {
		c.flushLocked()
	}
}

func important(line string) bool {
	for _, p := range []string{"Apply complete!", "Destroy complete!", "Error:", "│ Error:"} {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	return false
}
