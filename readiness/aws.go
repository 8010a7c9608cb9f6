package readiness

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"
)

// Check ids of the AWS checks.
const (
	CheckImages         = "images"
	CheckCapacity       = "capacity"
	CheckAWSPermissions = "permissions.aws"
	CheckCutover        = "cutover"
)

// AWSConfigFunc returns drbot's AWS configuration for a region (in drbot,
// cmd/drbot's awsConfigs.get: the default chain, loaded once per region).
type AWSConfigFunc func(ctx context.Context, region string) (aws.Config, error)

// finding is one line of evidence with the verdict it carries.
type finding struct {
	status Status
	line   string
}

// findings collect evidence; the worst status wins.
type findings []finding

func (f *findings) pass(format string, args ...any) {
	*f = append(*f, finding{Pass, fmt.Sprintf(format, args...)})
}
func (f *findings) warn(format string, args ...any) {
	*f = append(*f, finding{Warn, fmt.Sprintf(format, args...)})
}
func (f *findings) fail(format string, args ...any) {
	*f = append(*f, finding{Fail, fmt.Sprintf(format, args...)})
}

// status is the worst status among the findings (Pass when there are none).
func (f findings) status() Status {
	st := Pass
	for _, x := range f {
		if statusRank[x.status] < statusRank[st] {
			st = x.status
		}
	}
	return st
}

// evidence lists failures first, then warnings, then what passed, so the
// report's first lines say what is wrong.
func (f findings) evidence() []string {
	var out []string
	for _, st := range []Status{Fail, Warn, Pass} {
		for _, x := range f {
			if x.status == st {
				out = append(out, x.line)
			}
		}
	}
	return out
}

// result turns findings into a Result; fix is used only when it did not pass.
func (f findings) result(check, target, title, fix string) Result {
	r := Result{Check: check, Target: target, Title: title, Status: f.status(), Evidence: f.evidence()}
	if r.Status != Pass {
		r.Fix = fix
	}
	return r
}

// shortErr is an AWS error without the SDK's operation/request-id framing.
func shortErr(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode() + ": " + ae.ErrorMessage()
	}
	return firstLine(err.Error())
}
