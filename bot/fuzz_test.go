package bot

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/drbot/drbot/recovery"
)

// blockActions is a block_actions payload as Slack sends it for one click.
func blockActions(actionID, value string) []byte {
	b, _ := json.Marshal(map[string]any{
		"type":         "block_actions",
		"user":         map[string]string{"id": "U0FUZZ", "name": "fuzz"},
		"response_url": "https://hooks.slack.invalid/actions/T0/1/x",
		"trigger_id":   "1.2.x",
		"actions": []map[string]string{{
			"type": "button", "block_id": "b1", "action_id": actionID, "value": value, "action_ts": "1764067200.000100",
		}},
	})
	return b
}

func TestDecodeInteractionMapsEveryButtonDrbotRenders(t *testing.T) {
	v := ButtonValue{RunID: "prod-eu-20261125-1042-abc", StepID: "cutover.dns", Round: 2}
	cases := []struct {
		action string
		want   Interaction
	}{
		{ActionApprove, Interaction{Kind: InteractionDecide, ActionID: ActionApprove, Value: v, Decision: recovery.DecideApprove}},
		{ActionRetry, Interaction{Kind: InteractionDecide, ActionID: ActionRetry, Value: v, Decision: recovery.DecideRetry}},
		{ActionSkip, Interaction{Kind: InteractionDecide, ActionID: ActionSkip, Value: v, Decision: recovery.DecideSkip}},
		{ActionAbort, Interaction{Kind: InteractionDecide, ActionID: ActionAbort, Value: v, Decision: recovery.DecideAbort, Reason: "aborted from the failed step cutover.dns"}},
		{ActionReject, Interaction{Kind: InteractionRejectForm, ActionID: ActionReject, Value: v}},
		{ActionRollbackApprove, Interaction{Kind: InteractionRollback, ActionID: ActionRollbackApprove, Value: v, Decision: recovery.DecideApprove}},
		{ActionRollbackReject, Interaction{Kind: InteractionRollback, ActionID: ActionRollbackReject, Value: v, Decision: recovery.DecideReject}},
	}
	for _, c := range cases {
		var cb slack.InteractionCallback
		if err := json.Unmarshal(blockActions(c.action, v.String()), &cb); err != nil {
			t.Fatal(err)
		}
		got, err := DecodeInteraction(cb)
		if err != nil || got != c.want {
			t.Errorf("%s: got %+v, %v; want %+v", c.action, got, err, c.want)
		}
	}
	var cb slack.InteractionCallback
	if err := json.Unmarshal(blockActions(ActionDrillPostpone, "weekly|1764669600"), &cb); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeInteraction(cb)
	want := Interaction{Kind: InteractionDrill, ActionID: ActionDrillPostpone, Drill: "weekly", DrillStart: 1764669600}
	if err != nil || got != want {
		t.Errorf("drill postpone: got %+v, %v; want %+v", got, err, want)
	}
}

func TestDecodeInteractionRejectsUnknownActionsAndOtherModals(t *testing.T) {
	for _, id := range []string{"drbot.rollback.maybe", "drbot.gate.approve ", "other.app.button", ""} {
		var cb slack.InteractionCallback
		if err := json.Unmarshal(blockActions(id, "r1|s1|0"), &cb); err != nil {
			t.Fatal(err)
		}
		var ue *UnknownActionError
		if _, err := DecodeInteraction(cb); !errors.As(err, &ue) || ue.ActionID != id {
			t.Errorf("action %q: err = %v; want an UnknownActionError", id, err)
		}
	}
	for _, payload := range []string{
		`{"type":"block_actions","actions":[]}`,
		`{"type":"view_submission","view":{"callback_id":"someone.else","private_metadata":"r1|s1|0"}}`,
		`{"type":"shortcut","callback_id":"drbot.gate.reject.reason"}`,
	} {
		var cb slack.InteractionCallback
		if err := json.Unmarshal([]byte(payload), &cb); err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeInteraction(cb); !errors.Is(err, ErrNotForDrbot) {
			t.Errorf("%s: err = %v; want ErrNotForDrbot", payload, err)
		}
	}
}

// A view_submission without "state" used to dereference a nil pointer in
// the handler.
func TestDecodeInteractionTakesARejectSubmissionWithoutState(t *testing.T) {
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(`{"type":"view_submission","view":{"callback_id":"drbot.gate.reject.reason","private_metadata":"r1|gate.cutover|3"}}`), &cb); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeInteraction(cb)
	want := Interaction{Kind: InteractionDecide, ActionID: CallbackReject, Value: ButtonValue{RunID: "r1", StepID: "gate.cutover", Round: 3}, Decision: recovery.DecideReject}
	if err != nil || got != want {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
}

// knownActions is every action id drbot renders.
var knownActions = map[string]bool{
	ActionApprove: true, ActionReject: true, ActionRetry: true, ActionSkip: true, ActionAbort: true,
	ActionRollbackApprove: true, ActionRollbackReject: true,
	ActionDrillSkip: true, ActionDrillPostpone: true, ActionDrillRunNow: true,
}

func FuzzInteraction(f *testing.F) {
	for id := range knownActions {
		f.Add(blockActions(id, "prod-eu-20261125-1042-abc|cutover.dns|2"))
		f.Add(blockActions(id, "weekly|1764669600"))
	}
	f.Add(blockActions("drbot.rollback.maybe", "r|s|1"))
	f.Add([]byte(`{"type":"view_submission","view":{"callback_id":"drbot.gate.reject.reason","private_metadata":"r1|s|0",` +
		`"state":{"values":{"reason":{"reason_input":{"type":"plain_text_input","value":"  not yet  "}}}}}}`))
	f.Add([]byte(`{"type":"view_submission","view":{"callback_id":"drbot.gate.reject.reason","private_metadata":"r1|s|0"}}`))
	f.Add([]byte(`{"type":"block_actions","actions":[null]}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		var cb slack.InteractionCallback
		if err := json.Unmarshal(payload, &cb); err != nil {
			return // Slack's envelope, not drbot's decoding
		}
		in, err := DecodeInteraction(cb) // must never panic
		again, err2 := DecodeInteraction(cb)
		if in != again || (err == nil) != (err2 == nil) {
			t.Fatalf("decoding is not deterministic: %+v, %v then %+v, %v", in, err, again, err2)
		}
		if err != nil {
			checkInteractionError(t, cb, err)
			return
		}
		checkInteraction(t, cb, in)
	})
}

func checkInteractionError(t *testing.T, cb slack.InteractionCallback, err error) {
	t.Helper()
	var ue *UnknownActionError
	if errors.As(err, &ue) && knownActions[ue.ActionID] {
		t.Fatalf("known action %q reported as unknown", ue.ActionID)
	}
	// The message goes back to the person who clicked: short, echoed input clipped.
	msg := err.Error()
	if !utf8.ValidString(msg) || len(msg) > 300 {
		t.Fatalf("error message is not short valid UTF-8 (%d bytes): %q", len(msg), msg)
	}
	if cb.Type == slack.InteractionTypeBlockActions && len(cb.ActionCallback.BlockActions) > 0 && cb.ActionCallback.BlockActions[0] != nil {
		if id := cb.ActionCallback.BlockActions[0].ActionID; !knownActions[id] && !errors.As(err, &ue) {
			t.Fatalf("unknown action %q gave %v, want an UnknownActionError", id, err)
		}
	}
}

func checkInteraction(t *testing.T, cb slack.InteractionCallback, in Interaction) {
	t.Helper()
	switch cb.Type {
	case slack.InteractionTypeBlockActions:
		act := cb.ActionCallback.BlockActions[0]
		if !knownActions[in.ActionID] || in.ActionID != act.ActionID {
			t.Fatalf("action %q accepted as %+v", act.ActionID, in)
		}
		if in.Kind == InteractionDrill {
			// The value re-encodes to what the drill notice renders.
			ev := recovery.Event{Fields: map[string]string{"drill": in.Drill, "start_unix": strconv.FormatInt(in.DrillStart, 10)}}
			name, start, err := parseDrillValue(drillValue(ev))
			if err != nil || name != in.Drill || start != in.DrillStart || name == "" {
				t.Fatalf("drill value %q decoded to %q %d, which re-encodes to %q %d, %v", act.Value, in.Drill, in.DrillStart, name, start, err)
			}
			return
		}
		checkButtonValue(t, act.Value, in.Value)
	case slack.InteractionTypeViewSubmission:
		if in.Kind != InteractionDecide || in.Decision != recovery.DecideReject || cb.View.CallbackID != CallbackReject {
			t.Fatalf("view %q accepted as %+v", cb.View.CallbackID, in)
		}
		if in.Reason != strings.TrimSpace(in.Reason) {
			t.Fatalf("reason %q is not trimmed", in.Reason)
		}
		checkButtonValue(t, cb.View.PrivateMetadata, in.Value)
	default:
		t.Fatalf("interaction type %q accepted as %+v", cb.Type, in)
	}
	switch in.Kind {
	case InteractionDecide, InteractionRollback:
		if in.Decision == "" {
			t.Fatalf("%+v has no decision", in)
		}
	case InteractionRejectForm:
		if in.Decision != "" {
			t.Fatalf("the reject form decided %q before its reason", in.Decision)
		}
	default:
		t.Fatalf("unexpected kind in %+v", in)
	}
}

// checkButtonValue: a decoded value re-encodes to a string that decodes to
// the same value, and the run id it names is the raw one.
func checkButtonValue(t *testing.T, raw string, v ButtonValue) {
	t.Helper()
	back, err := ParseButtonValue(v.String())
	if err != nil || !reflect.DeepEqual(back, v) {
		t.Fatalf("value %q decoded to %+v, which re-encodes to %q and decodes to %+v, %v", raw, v, v.String(), back, err)
	}
	if v.RunID == "" || !strings.HasPrefix(raw, v.RunID+"|"+v.StepID+"|") {
		t.Fatalf("value %q decoded to %+v", raw, v)
	}
}
