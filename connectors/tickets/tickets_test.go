package tickets_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/soar-dev/soar/connectors/tickets"
)

func TestIncidentLabelIsAShortStableHashOfTheIncident(t *testing.T) {
	long := strings.Repeat("incident/with spaces and ünïcode ", 40)
	for _, id := range []string{"inc-2024-0042", long} {
		sum := sha256.Sum256([]byte(id))
		want := "soar-" + hex.EncodeToString(sum[:])[:16]
		got := tickets.IncidentLabel(id)
		if got != want || len(got) > 50 || strings.ContainsAny(got, " \t") {
			t.Errorf("IncidentLabel(%.20q...) = %q, want %q (at most 50 characters, no spaces)", id, got, want)
		}
	}
	if tickets.IncidentLabel("a") == tickets.IncidentLabel("b") {
		t.Error("two incidents share a label")
	}
}

func TestErrorSaysWhatHappenedAndWhatToDo(t *testing.T) {
	tests := []struct {
		err  tickets.Error
		want string
	}{
		{tickets.Error{Provider: "jira", Op: "create", Status: 403, Message: "You do not have permission.", Hint: "the account lacks permission to create issues in project SEC"},
			"jira create: HTTP 403 (You do not have permission.): the account lacks permission to create issues in project SEC"},
		{tickets.Error{Provider: "github", Op: "find", Status: 429, Retryable: true, RetryAfter: 30 * time.Second},
			"github find: HTTP 429: retry after 30s"},
		{tickets.Error{Provider: "webhook", Op: "comment", Retryable: true, Message: "connection refused"},
			"webhook comment: no answer (connection refused): temporary, retry later"},
		{tickets.Error{Provider: "jira", Op: "find", Hint: "the incident ID is empty; this is a bug in the caller, report it"},
			"jira find: the incident ID is empty; this is a bug in the caller, report it"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error()\n got %q\nwant %q", got, tc.want)
		}
	}
}

// stubProvider counts calls and finds what it is told to.
type stubProvider struct {
	found   *tickets.Ticket
	findErr error
	creates int
}

func (s *stubProvider) Name() string { return "stub" }
func (s *stubProvider) Find(context.Context, string) (*tickets.Ticket, error) {
	return s.found, s.findErr
}
func (s *stubProvider) Create(_ context.Context, c tickets.Content) (tickets.Ticket, error) {
	s.creates++
	return tickets.Ticket{Provider: "stub", Key: "NEW-1"}, nil
}
func (s *stubProvider) Comment(context.Context, tickets.Ticket, string, []tickets.Block) error {
	return nil
}
func (s *stubProvider) Resolve(context.Context, tickets.Ticket, string, []tickets.Block) error {
	return nil
}

func TestOpenCreatesOnlyWhenFindFindsNothing(t *testing.T) {
	ctx := context.Background()
	hit := &stubProvider{found: &tickets.Ticket{Provider: "stub", Key: "OLD-1"}}
	if tk, created, err := tickets.Open(ctx, hit, sampleContent()); err != nil || created || tk.Key != "OLD-1" || hit.creates != 0 {
		t.Errorf("Open with a ticket = %+v, %v, %v after %d creates", tk, created, err, hit.creates)
	}
	miss := &stubProvider{}
	if tk, created, err := tickets.Open(ctx, miss, sampleContent()); err != nil || !created || tk.Key != "NEW-1" || miss.creates != 1 {
		t.Errorf("Open without a ticket = %+v, %v, %v after %d creates", tk, created, err, miss.creates)
	}
	broken := &stubProvider{findErr: &tickets.Error{Provider: "stub", Op: "find", Status: 500, Retryable: true}}
	if _, _, err := tickets.Open(ctx, broken, sampleContent()); err == nil || broken.creates != 0 {
		t.Errorf("Open when Find fails: %v after %d creates; want the error and no create", err, broken.creates)
	}
}

func TestCallsWithoutIncidentOrTicketFailBeforeAnyRequest(t *testing.T) {
	ctx := context.Background()
	j := newFakeJira(t, true)
	g := newFakeGitHub(t)
	r := newReceiver(t)
	providers := []tickets.Provider{newJira(t, j), newGitHub(t, g), newWebhook(t, r)}
	for _, p := range providers {
		t.Run(p.Name(), func(t *testing.T) {
			calls := map[string]error{
				"find without incident":    func() error { _, err := p.Find(ctx, ""); return err }(),
				"create without incident":  func() error { _, err := p.Create(ctx, tickets.Content{Title: "x"}); return err }(),
				"comment without ticket":   p.Comment(ctx, tickets.Ticket{}, "inc-1", sampleComment()),
				"resolve another's ticket": p.Resolve(ctx, tickets.Ticket{Provider: "servicenow", Key: "INC001"}, "inc-1", nil),
			}
			for name, err := range calls {
				var te *tickets.Error
				if !errors.As(err, &te) || te.Retryable || te.Hint == "" {
					t.Errorf("%s: %v; want a non-retryable error with a hint", name, err)
				}
			}
		})
	}
	if n := len(j.requests()) + len(g.requests()) + len(r.requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}
