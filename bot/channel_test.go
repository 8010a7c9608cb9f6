package bot

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestChannelNamesAreValidSlackNames(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 42, 0, 0, time.UTC)
	valid := regexp.MustCompile(`^[a-z0-9_-]{1,80}$`)
	cases := map[string]string{
		ChannelName("dr", "prod-eu", false, at):                  "dr-prod-eu-20261125-1042",
		ChannelName("dr", "prod-eu", true, at):                   "drill-prod-eu-20261125-1042",
		ChannelName("DR", "Prod EU/Main", false, at):             "dr-prod-eu-main-20261125-1042",
		ChannelName("", strings.Repeat("x", 200), false, at)[:3]: "dr-",
	}
	for got, want := range cases {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	long := ChannelName("dr", strings.Repeat("ab-", 60), false, at)
	if !valid.MatchString(long) || !strings.HasSuffix(long, "-20261125-1042") {
		t.Errorf("long name %q (%d chars) is not a valid Slack name keeping its time stamp", long, len(long))
	}
}
