package incidents

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestParseTokensReadsNamedTokensAndNeverQuotesOneInErrors(t *testing.T) {
	long := strings.Repeat("x", MinTokenLength)
	got, people, err := ParseTokens("# votes from the pager bot\noncall:" + long + ", ci: " + long + "y\nalice:" + long + "z:U0ALICE\n")
	if err != nil || len(got) != 3 || got["oncall"] != long || got["ci"] != long+"y" || got["alice"] != long+"z" {
		t.Fatalf("%v %v", got, err)
	}
	if len(people) != 1 || people["alice"] != "U0ALICE" {
		t.Errorf("people %v, want alice's token held by U0ALICE", people)
	}
	// A token with a colon in it is still one token.
	if got, people, err := ParseTokens("ci:" + long + ":not-a-slack-id"); err != nil || got["ci"] != long+":not-a-slack-id" || len(people) != 0 {
		t.Errorf("a token with a colon: %v %v %v", got, people, err)
	}
	for name, in := range map[string]string{
		"no name":  ":" + long,
		"short":    "ci:tooshort",
		"twice":    "ci:" + long + ",ci:" + long,
		"no colon": long,
		"space":    "on call:" + long,
	} {
		_, _, err := ParseTokens(in)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), long) || strings.Contains(err.Error(), "tooshort") {
			t.Errorf("%s: the error quotes the token: %v", name, err)
		}
	}
}

// TestVoteNeedsAValidToken: without a token the vote API answers 401 and
// never reaches Temporal (the service here has none).
func TestVoteNeedsAValidToken(t *testing.T) {
	api := &API{Service: &Service{Log: zerolog.Nop()}, Tokens: Tokens{"oncall": strings.Repeat("t", MinTokenLength)}}
	mux := http.NewServeMux()
	api.Register(mux)
	for name, header := range map[string]string{
		"none":       "",
		"wrong":      "Bearer " + strings.Repeat("u", MinTokenLength),
		"prefix":     "Bearer " + strings.Repeat("t", MinTokenLength-1),
		"not bearer": "Basic " + strings.Repeat("t", MinTokenLength),
	} {
		for _, path := range []string{"votes", "close", "release"} {
			req := httptest.NewRequest(http.MethodPost, "/api/v1/incidents/x/"+path, strings.NewReader(`{"approve": true}`))
			if header != "" {
				req.Header.Set("Authorization", header)
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("%s %s: %d %s", path, name, rec.Code, rec.Body)
			}
		}
	}
	// A close or release whose body is not {"reason": …}: 400.
	for _, path := range []string{"close", "release"} {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/incidents/x/"+path, strings.NewReader(`{"reason": "x", "release": true}`))
		req.Header.Set("Authorization", "Bearer "+strings.Repeat("t", MinTokenLength))
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `unknown field \"release\"`) {
			t.Errorf("%s with an unknown field: %d %s", path, rec.Code, rec.Body)
		}
	}
	// A valid token with a body that names no decision: 400, still before
	// any Temporal call.
	req := httptest.NewRequest(http.MethodPost, "/api/v1/incidents/x/votes", strings.NewReader(`{"step": "ask"}`))
	req.Header.Set("Authorization", "Bearer "+strings.Repeat("t", MinTokenLength))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Errorf("no decision: %d %s", rec.Code, rec.Body)
	}
}

// TestATokenIsRateLimited: past its burst a token gets 429 with
// Retry-After, before any Temporal call (the service here has none);
// another token is not affected.
func TestATokenIsRateLimited(t *testing.T) {
	api := &API{Service: &Service{Log: zerolog.Nop()}, Tokens: Tokens{
		"ci": strings.Repeat("c", MinTokenLength), "oncall": strings.Repeat("o", MinTokenLength),
	}}
	mux := http.NewServeMux()
	api.Register(mux)
	send := func(token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/incidents/x/close", strings.NewReader(`{"reason": "x", "unknown": 1}`))
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec
	}
	for i := range TokenBurst {
		if rec := send(strings.Repeat("c", MinTokenLength)); rec.Code != http.StatusBadRequest {
			t.Fatalf("request %d: %d %s, want 400 (past the limit check, refused for its body)", i, rec.Code, rec.Body)
		}
	}
	rec := send(strings.Repeat("c", MinTokenLength))
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "too many requests with token ci") {
		t.Errorf("past the burst: %d %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if rec := send(strings.Repeat("o", MinTokenLength)); rec.Code != http.StatusBadRequest {
		t.Errorf("another token: %d %s", rec.Code, rec.Body)
	}
}
