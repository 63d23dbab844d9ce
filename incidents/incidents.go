// Package incidents reads incidents back out of Temporal for people: the CLI's
// 'soar incident list|show', and the registration of the search attributes
// that make incidents findable.
package incidents

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

// EnsureSearchAttributes registers soar's custom search attributes on the
// namespace when they are missing. It is idempotent. On a cluster where soar
// may not change the namespace, the error names the attributes an operator
// must add.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range workflows.SearchAttributes() {
		if _, ok := resp.GetCustomAttributes()[name]; !ok {
			missing[name] = typ
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace:        namespace,
		SearchAttributes: missing,
	})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		names := make([]string, 0, len(missing))
		for n, typ := range missing {
			names = append(names, n+" ("+strings.TrimPrefix(typ.String(), "INDEXED_VALUE_TYPE_")+")")
		}
		sort.Strings(names)
		return fmt.Errorf("register search attributes %v on namespace %s: %w; an operator can add them with 'temporal operator search-attribute create'", names, namespace, err)
	}
	return nil
}

// Summary is one incident as the list shows it.
type Summary struct {
	ID              string `json:"id"`
	Playbook        string `json:"playbook"`
	PlaybookVersion string `json:"playbookVersion"`
	// Status is the lifecycle: responding, awaiting_approval, open or
	// closed (workflows.Lifecycles), or how the workflow itself ended when
	// it failed or was terminated. Outcome is what the steps achieved
	// (workflows.Outcomes), empty before they ran; an incident closed before
	// soar kept outcomes has none.
	Status  string `json:"status"`
	Outcome string `json:"outcome,omitempty"`
	// AlertCount and LastAlertAt are as the incident last published them
	// (at most 30 s old while alerts join, exact once closed); zero for
	// incidents from before it published them.
	AlertCount  int       `json:"alertCount,omitempty"`
	LastAlertAt time.Time `json:"lastAlertAt,omitzero"`
	Severity    string    `json:"severity"`
	Namespace   string    `json:"namespace"`
	Pod         string    `json:"pod"`
	// Cluster is the incident's cluster; empty for a single-cluster one.
	Cluster        string    `json:"cluster,omitempty"`
	Running        bool      `json:"running"`
	WorkflowStatus string    `json:"workflowStatus"`
	OpenedAt       time.Time `json:"openedAt"`
	ClosedAt       time.Time `json:"closedAt,omitzero"`
}

// List returns incidents newest first, at most limit of them. query, when not
// empty, is a Temporal visibility query ANDed with soar's own filter, e.g.
// "SoarStatus = 'open' AND SoarOutcome = 'contained'".
//
// An incident that continued as new is one row, its latest run: the runs it
// continued from are left out. A workflow ID reused by a later occurrence of
// the incident is a row per occurrence.
func List(ctx context.Context, c client.Client, namespace, query string, limit int) ([]Summary, error) {
	var out []Summary
	var token []byte
	for {
		page, next, err := Page(ctx, c, namespace, query, min(limit-len(out), 1000), token)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(out) >= limit || len(next) == 0 {
			return out, nil
		}
		token = next
	}
}

// Page returns one page of at most size incidents, newest first, and the
// token of the next page (nil after the last). query is as in List.
func Page(ctx context.Context, c client.Client, namespace, query string, size int, token []byte) ([]Summary, []byte, error) {
	q := "TaskQueue = '" + workflows.TaskQueue + "' AND ExecutionStatus != 'ContinuedAsNew'"
	if query != "" {
		q += " AND (" + query + ")"
	}
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: namespace, Query: q, NextPageToken: token, PageSize: int32(max(size, 1)),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list incidents: %w", err)
	}
	out := make([]Summary, 0, len(resp.GetExecutions()))
	for _, e := range resp.GetExecutions() {
		out = append(out, summary(e.GetExecution().GetWorkflowId(), e.GetStatus(), e.GetStartTime().AsTime(), e.GetCloseTime(), e.GetSearchAttributes()))
		if len(out) == size {
			break
		}
	}
	return out, resp.GetNextPageToken(), nil
}

type timestamp interface {
	AsTime() time.Time
	IsValid() bool
}

func summary(id string, status enumspb.WorkflowExecutionStatus, start time.Time, closed timestamp, sa *commonpb.SearchAttributes) Summary {
	s := Summary{
		ID:             id,
		Running:        status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
		WorkflowStatus: status.String(),
		OpenedAt:       start,
	}
	if closed != nil && closed.IsValid() && !closed.AsTime().IsZero() && !s.Running {
		s.ClosedAt = closed.AsTime()
	}
	dc := converter.GetDefaultDataConverter()
	get := func(name string) string {
		p, ok := sa.GetIndexedFields()[name]
		if !ok {
			return ""
		}
		var v string
		if err := dc.FromPayload(p, &v); err != nil {
			return ""
		}
		return v
	}
	s.Playbook = get(workflows.SearchPlaybook.GetName())
	s.PlaybookVersion = get(workflows.SearchPlaybookVersion.GetName())
	// Incidents recorded before the lifecycle and outcome were split hold
	// the detailed status in SoarStatus: Split reads both.
	s.Status, s.Outcome = workflows.Split(get(workflows.SearchStatus.GetName()))
	if o := get(workflows.SearchOutcome.GetName()); o != "" {
		s.Outcome = o
	}
	if p, ok := sa.GetIndexedFields()[workflows.SearchAlertCount.GetName()]; ok {
		var n int64
		if dc.FromPayload(p, &n) == nil {
			s.AlertCount = int(n)
		}
	}
	if p, ok := sa.GetIndexedFields()[workflows.SearchLastAlert.GetName()]; ok {
		var t time.Time
		if dc.FromPayload(p, &t) == nil {
			s.LastAlertAt = t
		}
	}
	s.Severity = get(workflows.SearchSeverity.GetName())
	s.Namespace = get(workflows.SearchNamespace.GetName())
	s.Pod = get(workflows.SearchPod.GetName())
	s.Cluster = get(workflows.SearchCluster.GetName())
	if !s.Running && status != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		// The workflow itself failed or was terminated: say so rather than
		// showing the last status it recorded.
		s.Status = status.String()
	}
	return s
}

// Detail is one incident in full.
type Detail struct {
	Summary
	State *workflows.IncidentState `json:"state,omitempty"`
	// Failure is set when the workflow failed or was terminated.
	Failure string `json:"failure,omitempty"`
}

// ErrNotFound means no incident has that ID.
var ErrNotFound = errors.New("incident not found")

// Show returns the incident with id: the live state of an open incident (from
// its state query) or the result of a closed one.
func Show(ctx context.Context, c client.Client, namespace, id string) (*Detail, error) {
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("describe incident %s: %w", id, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	d := &Detail{Summary: summary(id, info.GetStatus(), info.GetStartTime().AsTime(), info.GetCloseTime(), info.GetSearchAttributes())}
	runID := info.GetExecution().GetRunId()
	var st workflows.IncidentState
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		v, err := c.QueryWorkflow(ctx, id, runID, workflows.QueryState)
		if err != nil {
			return nil, fmt.Errorf("query incident %s: %w", id, err)
		}
		if err := v.Get(&st); err != nil {
			return nil, fmt.Errorf("decode incident %s: %w", id, err)
		}
		d.State = &st
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		if err := c.GetWorkflow(ctx, id, runID).Get(ctx, &st); err != nil {
			return nil, fmt.Errorf("result of incident %s: %w", id, err)
		}
		d.State = &st
	default:
		if err := c.GetWorkflow(ctx, id, runID).Get(ctx, nil); err != nil {
			d.Failure = err.Error()
		}
	}
	return d, nil
}

// Pinned returns the playbook the incident's current run follows, as the
// dispatcher pinned it at the start: read from the first event of the run's
// history, so it is what ran whatever changed in git since.
func Pinned(ctx context.Context, c client.Client, namespace, id string) (*playbooks.Spec, error) {
	// One event: the start, however long the history.
	resp, err := c.WorkflowService().GetWorkflowExecutionHistory(ctx, &workflowservice.GetWorkflowExecutionHistoryRequest{
		Namespace: namespace, Execution: &commonpb.WorkflowExecution{WorkflowId: id}, MaximumPageSize: 1,
	})
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("history of incident %s: %w", id, err)
	}
	events := resp.GetHistory().GetEvents()
	if len(events) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	attrs := events[0].GetWorkflowExecutionStartedEventAttributes()
	if attrs == nil || len(attrs.GetInput().GetPayloads()) == 0 {
		return nil, fmt.Errorf("incident %s: its history does not start with its input", id)
	}
	var in workflows.RespondInput
	if err := converter.GetDefaultDataConverter().FromPayload(attrs.GetInput().GetPayloads()[0], &in); err != nil {
		return nil, fmt.Errorf("incident %s: decode its input: %w", id, err)
	}
	return &in.Playbook, nil
}
