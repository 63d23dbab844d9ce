package devstack

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/server/common/dynamicconfig"
)

func TestDynamicConfigForcesFreshSearchAttributesOnlyForAWhile(t *testing.T) {
	dc := &dynamicConfig{static: dynamicconfig.StaticClient{
		dynamicconfig.MatchingNumTaskqueueReadPartitions.Key(): []dynamicconfig.ConstrainedValue{{Value: 1}},
	}}
	force := dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key()
	if v := dc.GetValue(force); v != nil {
		t.Fatalf("forced before any search attribute was added: %v", v)
	}
	if v := dc.GetValue(dynamicconfig.MatchingNumTaskqueueReadPartitions.Key()); len(v) != 1 || v[0].Value != 1 {
		t.Fatalf("static value lost: %v", v)
	}
	dc.forceFor(time.Hour)
	if v := dc.GetValue(force); len(v) != 1 || v[0].Value != true {
		t.Fatalf("not forced within the window: %v", v)
	}
	// A shorter window never shortens a longer one.
	dc.forceFor(time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	if v := dc.GetValue(force); len(v) != 1 {
		t.Fatal("a shorter window cut the longer one")
	}
	dc.forceUntil.Store(time.Now().Add(-time.Second).UnixNano())
	if v := dc.GetValue(force); v != nil {
		t.Fatalf("still forced after the window: %v", v)
	}
}

// A search attribute added through the operator API is usable by the very
// next start, although the server no longer bypasses its caches at rest.
func TestSearchAttributeAddedAtRuntimeIsUsableAtOnce(t *testing.T) {
	ts, err := StartTemporal(TemporalOptions{Namespaces: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ts.Stop() })
	if ts.dc.forceUntil.Load() != 0 {
		t.Fatal("cache refresh forced before any search attribute was added")
	}
	c := dial(t, ts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace:        "default",
		SearchAttributes: map[string]enumspb.IndexedValueType{"LateAttr": enumspb.INDEXED_VALUE_TYPE_KEYWORD},
	}); err != nil {
		t.Fatal(err)
	}
	if left := time.Until(time.Unix(0, ts.dc.forceUntil.Load())); left < searchAttributesFreshFor-10*time.Second {
		t.Fatalf("adding a search attribute forced fresh reads for %v only", left)
	}
	startWith(ctx, t, c, "late", temporal.NewSearchAttributeKeyKeyword("LateAttr").ValueSet("x"))
}

// A new database gets the search attributes with its namespace, so nothing
// needs forcing.
func TestNewDatabaseHasItsSearchAttributes(t *testing.T) {
	ts, err := StartTemporal(TemporalOptions{
		DBPath:           filepath.Join(t.TempDir(), "temporal.db"),
		Namespaces:       []string{"default"},
		SearchAttributes: map[string]enumspb.IndexedValueType{"EarlyAttr": enumspb.INDEXED_VALUE_TYPE_KEYWORD, "EarlyCount": enumspb.INDEXED_VALUE_TYPE_INT},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ts.Stop() })
	c := dial(t, ts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetCustomAttributes(); got["EarlyAttr"] != enumspb.INDEXED_VALUE_TYPE_KEYWORD || got["EarlyCount"] != enumspb.INDEXED_VALUE_TYPE_INT {
		t.Fatalf("custom search attributes %v", got)
	}
	startWith(ctx, t, c, "early", temporal.NewSearchAttributeKeyKeyword("EarlyAttr").ValueSet("x"), temporal.NewSearchAttributeKeyInt64("EarlyCount").ValueSet(3))
	if ts.dc.forceUntil.Load() != 0 {
		t.Fatal("cache refresh forced although no search attribute was added at runtime")
	}
}

func dial(t *testing.T, ts *Temporal) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: ts.Address(), Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// startWith starts a workflow (no worker runs it) with search attributes and
// checks that Temporal stored them.
func startWith(ctx context.Context, t *testing.T, c client.Client, id string, sas ...temporal.SearchAttributeUpdate) {
	t.Helper()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: "nobody", TypedSearchAttributes: temporal.NewSearchAttributes(sas...),
	}, "Nothing")
	if err != nil {
		t.Fatalf("start with search attributes: %v", err)
	}
	desc, err := c.DescribeWorkflowExecution(ctx, id, run.GetRunID())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()); n != len(sas) {
		t.Fatalf("workflow stored %d search attributes, want %d", n, len(sas))
	}
}
