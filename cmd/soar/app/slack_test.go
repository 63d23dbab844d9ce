package app

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/soar-dev/soar/internal/httpserver"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/internal/testenv"
	"github.com/soar-dev/soar/internal/testenv/fakeslack"
)

// TestSlackReadinessSaysWhenSocketModeStopped: Slack refuses the app-level
// token (revoked, or a typo), so Socket Mode stops for good and no button
// vote arrives any more, while the bot token still answers. The "slack"
// readiness check says so (degraded: votes still come through the CLI and
// the API), without the token; with the right token it is ok.
func TestSlackReadinessSaysWhenSocketModeStopped(t *testing.T) {
	const right, wrong = "xapp-1-the-right-app-token", "xapp-1-a-revoked-app-token"
	fs := fakeslack.New(t)
	fs.SetAppToken(right)
	for _, c := range []struct {
		appToken string
		want     string
	}{
		{right, "ok"},
		{wrong, "degraded: Socket Mode stopped, votes from Slack buttons are not received until a restart with a valid app-level token: "},
	} {
		hs := httpserver.New(metrics.New().Registry)
		sec := SlackSecrets{BotToken: "xoxb-bot", AppToken: c.appToken, ButtonKey: strings.Repeat("k", 32), APIURL: fs.URL}
		a, err := StartApprovals(context.Background(), hs, nil, testenv.SigningKeys(), sec, nil, nil, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Stop)
		connected := fs.Connections()
		testenv.Eventually(t, 10*time.Second, "slack check with app token "+c.appToken, func() error {
			rep := hs.Ready(context.Background())
			got := rep.Checks["slack"]
			if !rep.Ready || !strings.HasPrefix(got, c.want) || strings.Contains(got, c.appToken) {
				return fmt.Errorf("/readyz: %+v", rep)
			}
			if c.appToken == right && fs.Connections() == connected {
				return fmt.Errorf("not connected yet")
			}
			return nil
		})
	}
}
