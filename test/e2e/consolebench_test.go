package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/soar-dev/soar/console"
	"github.com/soar-dev/soar/incidents"
	"github.com/soar-dev/soar/internal/httpserver"
	"github.com/soar-dev/soar/internal/metrics"
	"github.com/soar-dev/soar/workflows"
)

// consoleBenchIncidents is how many incidents BenchmarkConsoleList puts in
// Temporal before it reads the list.
const consoleBenchIncidents = 10_000

// BenchmarkConsoleList serves the console's incident list from a real
// Temporal holding 10,000 incidents (running workflows with soar's search
// attributes; no worker runs them): the first page, a filtered page and the
// second page, each one request through the console's HTTP handler, so
// Temporal's visibility query and the rendering are measured together.
func BenchmarkConsoleList(b *testing.B) {
	ctx := context.Background()
	tc := temporalClient(b)
	run := fmt.Sprintf("bench-console-%d", time.Now().UnixNano())
	start := time.Now()
	var started atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < consoleBenchIncidents; i += 16 {
				sa := temporal.NewSearchAttributes(
					workflows.SearchPlaybook.ValueSet(run), workflows.SearchStatus.ValueSet(workflows.LifecycleOpen),
					workflows.SearchOutcome.ValueSet(workflows.OutcomeContained), workflows.SearchSeverity.ValueSet("critical"),
					workflows.SearchNamespace.ValueSet("bench"), workflows.SearchPod.ValueSet(fmt.Sprintf("web-%d", i)),
				)
				_, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
					ID: fmt.Sprintf("%s-%05d", run, i), TaskQueue: workflows.TaskQueue, TypedSearchAttributes: sa,
				}, workflows.RespondName, workflows.RespondInput{})
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
				started.Add(1)
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatalf("start incidents (%d started): %v", started.Load(), err)
	default:
	}
	query := "SoarPlaybook = '" + run + "'"
	for {
		resp, err := tc.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: "default", Query: query})
		if err != nil {
			b.Fatal(err)
		}
		if resp.GetCount() >= consoleBenchIncidents {
			break
		}
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("visibility holds %d of %d incidents after 10 minutes", resp.GetCount(), consoleBenchIncidents)
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.Logf("%d incidents started and visible in %s", consoleBenchIncidents, time.Since(start).Round(time.Second))

	c, err := console.New(console.Config{Temporal: tc, Namespace: "default", Service: soarService(b, tc), Auth: console.Local{User: "api:bench", Name: "bench"}, Log: testLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	hs := httpserver.New(metrics.New().Registry)
	c.Register(hs)
	srv := httptest.NewServer(hs.Handler())
	b.Cleanup(srv.Close)
	get := func(b *testing.B, path string) string {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d %v\n%.2000s", path, resp.StatusCode, err, body)
		}
		return string(body)
	}
	rowsOf := regexp.MustCompile(`href="/console/incidents/` + run)
	next := regexp.MustCompile(`href="(/console/\?[^"]*page=[^"]*)" id="next"`)
	first := get(b, "/console/?playbook="+run)
	m := next.FindStringSubmatch(first)
	if n := len(rowsOf.FindAllString(first, -1)); n != console.PageSize || m == nil {
		b.Fatalf("the first page holds %d of the incidents (want %d) and a next link %v", n, console.PageSize, m != nil)
	}
	second := strings.ReplaceAll(m[1], "&amp;", "&")
	// Temporal's answer alone, for comparison: the list's query, one page.
	b.Run("visibility-only", func(b *testing.B) {
		var took []time.Duration
		for b.Loop() {
			t0 := time.Now()
			rows, _, err := incidents.Page(ctx, tc, "default", "", console.PageSize, nil)
			took = append(took, time.Since(t0))
			if err != nil || len(rows) != console.PageSize {
				b.Fatalf("a page of %d incidents: %v", len(rows), err)
			}
		}
		report(b, took)
	})
	for _, page := range []struct{ name, path string }{
		{"first-page", "/console/"},
		{"filtered", "/console/?status=open&outcome=contained&namespace=bench&q=" + run},
		{"second-page", second},
	} {
		b.Run(page.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				t0 := time.Now()
				body := get(b, page.path)
				took = append(took, time.Since(t0))
				if n := len(rowsOf.FindAllString(body, -1)); n != console.PageSize {
					b.Fatalf("%s holds %d of the incidents, want %d", page.path, n, console.PageSize)
				}
			}
			report(b, took)
		})
	}
}

// report reports the median and the 99th percentile of took.
func report(b *testing.B, took []time.Duration) {
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}
