package dispatch

import (
	"context"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/soar-dev/soar/alert"
	"github.com/soar-dev/soar/playbooks"
	"github.com/soar-dev/soar/workflows"
)

// signalWithStart delivers sig to the incident's workflow, starting it if no
// incident with that ID is open. It reports whether it started one.
//
// It calls the service API directly rather than the SDK's helper because only
// the API's response says whether the workflow was started or signalled.
func (d *Dispatcher) signalWithStart(ctx context.Context, m playbooks.Match, sig workflows.AlertSignal, requestID string) (bool, error) {
	dc := converter.GetDefaultDataConverter()
	spec := m.Playbook.Spec()
	wid := playbooks.IncidentID(spec.Name, m.IncidentKey)
	input, err := dc.ToPayloads(workflows.RespondInput{IncidentID: wid, IncidentKey: m.IncidentKey, Playbook: spec})
	if err != nil {
		return false, fmt.Errorf("dispatch: encode workflow input: %w", err)
	}
	signal, err := dc.ToPayloads(sig)
	if err != nil {
		return false, fmt.Errorf("dispatch: encode alert signal: %w", err)
	}
	if size := payloadsSize(input) + payloadsSize(signal); size > d.cfg.MaxTemporalPayload {
		return false, &payloadTooLargeError{size: size, limit: d.cfg.MaxTemporalPayload}
	}
	attrs, err := searchAttributes(dc, spec, sig.Alert, m.Severity)
	if err != nil {
		return false, err
	}
	workflowType := spec.Workflow
	if workflowType == "" {
		workflowType = workflows.RespondName
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.TemporalTimeout)
	defer cancel()
	resp, err := d.temporal.WorkflowService().SignalWithStartWorkflowExecution(ctx, &workflowservice.SignalWithStartWorkflowExecutionRequest{
		Namespace:                d.cfg.Namespace,
		WorkflowId:               wid,
		WorkflowType:             &commonpb.WorkflowType{Name: workflowType},
		TaskQueue:                &taskqueuepb.TaskQueue{Name: d.cfg.TaskQueue, Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
		Input:                    input,
		Identity:                 d.cfg.Identity,
		RequestId:                requestID,
		WorkflowIdReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIdConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		SignalName:               workflows.SignalAlert,
		SignalInput:              signal,
		SearchAttributes:         attrs,
	})
	d.metrics.TemporalCalls.WithLabelValues("signal_with_start").Inc()
	d.metrics.TemporalBytes.Add(float64(payloadsSize(input) + payloadsSize(signal)))
	if err != nil {
		return false, fmt.Errorf("dispatch: signal-with-start %s: %w", wid, err)
	}
	return resp.GetStarted(), nil
}

// signal delivers sig to the open incident wid, without the playbook: the
// incident pinned it when it started. Temporal answers NotFound when the
// incident is no longer open.
func (d *Dispatcher) signal(ctx context.Context, wid string, sig workflows.AlertSignal, requestID string) error {
	payload, err := converter.GetDefaultDataConverter().ToPayloads(sig)
	if err != nil {
		return fmt.Errorf("dispatch: encode alert signal: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.TemporalTimeout)
	defer cancel()
	_, err = d.temporal.WorkflowService().SignalWorkflowExecution(ctx, &workflowservice.SignalWorkflowExecutionRequest{
		Namespace:         d.cfg.Namespace,
		WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: wid},
		SignalName:        workflows.SignalAlert,
		Input:             payload,
		Identity:          d.cfg.Identity,
		RequestId:         requestID,
	})
	d.metrics.TemporalCalls.WithLabelValues("signal").Inc()
	d.metrics.TemporalBytes.Add(float64(payloadsSize(payload)))
	if err != nil {
		return fmt.Errorf("dispatch: signal %s: %w", wid, err)
	}
	return nil
}

func searchAttributes(dc converter.DataConverter, spec playbooks.Spec, a alert.Alert, severity alert.Severity) (*commonpb.SearchAttributes, error) {
	values := map[string]string{
		workflows.SearchPlaybook.GetName():        spec.Name,
		workflows.SearchPlaybookVersion.GetName(): spec.Version,
		workflows.SearchSeverity.GetName():        severity.String(),
		workflows.SearchNamespace.GetName():       a.Kubernetes.Namespace,
		workflows.SearchPod.GetName():             a.Kubernetes.Pod,
		workflows.SearchStatus.GetName():          workflows.StatusResponding,
	}
	fields := make(map[string]*commonpb.Payload, len(values))
	for k, v := range values {
		if v == "" {
			continue
		}
		p, err := dc.ToPayload(v)
		if err != nil {
			return nil, fmt.Errorf("dispatch: encode search attribute %s: %w", k, err)
		}
		fields[k] = p
	}
	return &commonpb.SearchAttributes{IndexedFields: fields}, nil
}

// payloadTooLargeError means the incident's input would exceed what Temporal
// accepts: retrying cannot help.
type payloadTooLargeError struct{ size, limit int }

func (e *payloadTooLargeError) Error() string {
	return fmt.Sprintf("dispatch: incident input of %d bytes exceeds the %d-byte limit for Temporal payloads", e.size, e.limit)
}

func payloadsSize(p *commonpb.Payloads) int {
	n := 0
	for _, x := range p.GetPayloads() {
		n += len(x.GetData())
		for _, m := range x.GetMetadata() {
			n += len(m)
		}
	}
	return n
}
