package recovery

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
)

// classified carries an explicit retry class, like Temporal's
// application errors: the action that knows says so.
type classified struct {
	err       error
	retryable bool
}

func (c *classified) Error() string { return c.err.Error() }
func (c *classified) Unwrap() error { return c.err }

// Retryable marks err as worth retrying with backoff.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, retryable: true}
}

// Permanent marks err as not worth retrying: the step parks as failed and
// an operator decides.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, retryable: false}
}

// IsRetryable classifies err. An explicit Retryable/Permanent mark wins;
// otherwise throttling, 5xx and timeouts are retryable, the rest permanent.
// It reads AWS, Kubernetes and HTTP errors through small interfaces so the
// engine imports none of those SDKs.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var c *classified
	if errors.As(err, &c) {
		return c.retryable
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if code := ErrorCode(err); code != "" {
		if strings.Contains(code, "Throttl") || code == "RequestLimitExceeded" || code == "TooManyRequestsException" ||
			code == "PriorRequestNotComplete" || code == "ServiceUnavailable" || code == "InternalFailure" || code == "RequestTimeout" {
			return true
		}
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) {
		if sc := status.HTTPStatusCode(); sc == 429 || sc >= 500 {
			return true
		}
	}
	var sc statusCoder
	if errors.As(err, &sc) {
		if code := sc.StatusCode(); code == 429 || code >= 500 {
			return true
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	// A refused or reset connection, or a response cut short, is the far
	// end restarting or a load balancer in between: worth another try.
	var opErr *net.OpError
	var urlErr *url.Error
	if errors.As(err, &opErr) || errors.As(err, &urlErr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	var temp interface{ Temporary() bool }
	if errors.As(err, &temp) && temp.Temporary() {
		return true
	}
	return false
}

// statusCoder is how integrations expose an HTTP status for SDKs whose
// errors carry it as a field (Vault, GitLab, Kubernetes) rather than a method.
type statusCoder interface{ StatusCode() int }

// reopenGate asks for a new approval instead of failing.
type reopenGate struct{ err error }

func (r *reopenGate) Error() string { return r.err.Error() }
func (r *reopenGate) Unwrap() error { return r.err }

// ReopenGate is returned by a gated step's action when what people
// approved no longer holds (the merge request's branch moved since the
// review): the step goes back to its gate for a new round, with err as
// the reason, instead of failing.
func ReopenGate(err error) error {
	if err == nil {
		return nil
	}
	return &reopenGate{err: err}
}

// isClassified reports whether err carries an explicit Retryable or
// Permanent mark.
func isClassified(err error) bool {
	var c *classified
	return errors.As(err, &c)
}

// ErrorCode is the API error code in err's chain (an AWS error's
// "ResourceNotFoundException", smithy.APIError's ErrorCode), "" when none.
func ErrorCode(err error) string {
	var coded interface{ ErrorCode() string }
	if errors.As(err, &coded) {
		return coded.ErrorCode()
	}
	return ""
}
