package bot

import (
	"errors"
	"fmt"
	"strings"

	"github.com/slack-go/slack"

	"github.com/drbot/drbot/recovery"
)

// InteractionKind says what a Slack interaction asks drbot to do.
type InteractionKind int

const (
	// InteractionDecide is a gate or failure button, or the submitted
	// reject-reason modal: Decision (and Reason) go to the engine.
	InteractionDecide InteractionKind = iota + 1
	// InteractionRejectForm is the gate's Reject button: open the reason modal.
	InteractionRejectForm
	// InteractionRollback approves or rejects a rollback request.
	InteractionRollback
	// InteractionDrill skips, postpones or runs a scheduled drill now.
	InteractionDrill
)

// Interaction is a Slack interaction decoded into drbot's terms. Which
// fields are set depends on Kind.
type Interaction struct {
	Kind     InteractionKind
	ActionID string // the button's action id; CallbackReject for the modal
	// Value names the run, step and round (decide, reject form, rollback).
	Value    ButtonValue
	Decision recovery.DecisionKind // decide, rollback (approve or reject)
	Reason   string                // the reject modal's text; the abort button's fixed reason
	// Drill and DrillStart name the scheduled drill (drill buttons).
	Drill      string
	DrillStart int64
}

// ErrNotForDrbot is an interaction drbot does not act on: no action,
// another app's modal, an interaction type drbot never asks for.
var ErrNotForDrbot = errors.New("not a drbot interaction")

// UnknownActionError is a block action whose id drbot never renders.
type UnknownActionError struct{ ActionID string }

func (e *UnknownActionError) Error() string {
	return fmt.Sprintf("unknown action %q", clip(e.ActionID))
}

// buttonDecisions maps the gate and failure buttons to the decision each
// records (the Reject button opens a form first).
var buttonDecisions = map[string]recovery.DecisionKind{
	ActionApprove: recovery.DecideApprove,
	ActionRetry:   recovery.DecideRetry,
	ActionSkip:    recovery.DecideSkip,
	ActionAbort:   recovery.DecideAbort,
}

// DecodeInteraction turns a block_actions or view_submission payload into
// what drbot should do, without side effects. Errors other than
// ErrNotForDrbot and *UnknownActionError are malformed values, worded for
// the person who clicked.
func DecodeInteraction(cb slack.InteractionCallback) (Interaction, error) {
	switch cb.Type {
	case slack.InteractionTypeBlockActions:
		if len(cb.ActionCallback.BlockActions) == 0 || cb.ActionCallback.BlockActions[0] == nil {
			return Interaction{}, ErrNotForDrbot
		}
		return decodeAction(cb.ActionCallback.BlockActions[0])
	case slack.InteractionTypeViewSubmission:
		if cb.View.CallbackID != CallbackReject {
			return Interaction{}, ErrNotForDrbot
		}
		v, err := ParseButtonValue(cb.View.PrivateMetadata)
		if err != nil {
			return Interaction{}, err
		}
		var reason string
		// A submission without state (a client bug or a forged payload) is
		// a rejection without a reason, not a nil dereference.
		if cb.View.State != nil {
			reason = strings.TrimSpace(cb.View.State.Values[blockReason][actionReason].Value)
		}
		return Interaction{Kind: InteractionDecide, ActionID: CallbackReject, Value: v, Decision: recovery.DecideReject, Reason: reason}, nil
	}
	return Interaction{}, ErrNotForDrbot
}

func decodeAction(act *slack.BlockAction) (Interaction, error) {
	id := act.ActionID
	switch {
	case isDrillAction(id):
		name, start, err := parseDrillValue(act.Value)
		if err != nil {
			return Interaction{}, err
		}
		return Interaction{Kind: InteractionDrill, ActionID: id, Drill: name, DrillStart: start}, nil
	case id == ActionRollbackApprove || id == ActionRollbackReject:
		v, err := ParseButtonValue(act.Value)
		if err != nil {
			return Interaction{}, err
		}
		kind := recovery.DecideReject
		if id == ActionRollbackApprove {
			kind = recovery.DecideApprove
		}
		return Interaction{Kind: InteractionRollback, ActionID: id, Value: v, Decision: kind}, nil
	case id == ActionReject:
		v, err := ParseButtonValue(act.Value)
		if err != nil {
			return Interaction{}, err
		}
		return Interaction{Kind: InteractionRejectForm, ActionID: id, Value: v}, nil
	}
	kind, ok := buttonDecisions[id]
	if !ok {
		return Interaction{}, &UnknownActionError{ActionID: id}
	}
	v, err := ParseButtonValue(act.Value)
	if err != nil {
		return Interaction{}, err
	}
	in := Interaction{Kind: InteractionDecide, ActionID: id, Value: v, Decision: kind}
	if kind == recovery.DecideAbort {
		in.Reason = "aborted from the failed step " + v.StepID
	}
	return in, nil
}
