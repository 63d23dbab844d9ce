package dispatch

import (
	"context"
	"errors"
	"fmt"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

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
	wid := m.IncidentID()
	in := workflows.RespondInput{IncidentID: wid, IncidentKey: m.IncidentKey, Playbook: spec, Baseline: workflows.Baseline}
	if err := d.sign(&in, &sig); err != nil {
		return false, err
	}
	input, err := dc.ToPayloads(in)
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
	ctx, cancel := context.WithTimeout(ctx, d.cfg.TemporalTimeout)
	defer cancel()
	resp, err := d.temporal.WorkflowService().SignalWithStartWorkflowExecution(ctx, &workflowservice.SignalWithStartWorkflowExecutionRequest{
		Namespace:                d.cfg.Namespace,
		WorkflowId:               wid,
		WorkflowType:             &commonpb.WorkflowType{Name: workflowName(spec)},
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

// start starts the incident's workflow with sig as its first alert, in the
// workflow's input, and asks for eager execution: when a worker shares the
// dispatcher's Temporal client (soar dev, or dispatch and worker in one
// process), Temporal hands the first workflow task back in the answer to the
// start and that worker runs it at once, skipping the task queue. Elsewhere
// it is a plain start. It returns errAlreadyOpen when the incident is open
// already (another dispatcher, or an earlier delivery, started it); the
// caller then signals it.
func (d *Dispatcher) start(ctx context.Context, m playbooks.Match, sig workflows.AlertSignal) error {
	spec := m.Playbook.Spec()
	wid := m.IncidentID()
	in := workflows.RespondInput{IncidentID: wid, IncidentKey: m.IncidentKey, Playbook: spec, First: &sig, Baseline: workflows.Baseline}
	if err := d.sign(&in, nil); err != nil {
		return err
	}
	input, err := converter.GetDefaultDataConverter().ToPayloads(in)
	if err != nil {
		return fmt.Errorf("dispatch: encode workflow input: %w", err)
	}
	if size := payloadsSize(input); size > d.cfg.MaxTemporalPayload {
		return &payloadTooLargeError{size: size, limit: d.cfg.MaxTemporalPayload}
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.TemporalTimeout)
	defer cancel()
	_, err = d.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       wid,
		TaskQueue:                                d.cfg.TaskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes:                    typedSearchAttributes(spec, sig.Alert, m.Severity),
		EnableEagerStart:                         true,
	}, workflowName(spec), in)
	d.metrics.TemporalCalls.WithLabelValues("start").Inc()
	d.metrics.TemporalBytes.Add(float64(payloadsSize(input)))
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return errAlreadyOpen
	}
	if err != nil {
		return fmt.Errorf("dispatch: start %s: %w", wid, err)
	}
	return nil
}

// errAlreadyOpen: the incident start would open is open already.
var errAlreadyOpen = errors.New("dispatch: incident already open")

// signal delivers sig to the open incident wid, without the playbook: the
// incident pinned it when it started. Temporal answers NotFound when the
// incident is no longer open.
func (d *Dispatcher) signal(ctx context.Context, wid string, sig workflows.AlertSignal, requestID string) error {
	if d.cfg.Keys != nil {
		if err := workflows.SignAlert(d.cfg.Keys, wid, &sig); err != nil {
			return fmt.Errorf("dispatch: sign alert signal: %w", err)
		}
	}
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

// sign proves in and, when given, the alert signal that goes with it: the
// worker acts on neither without the proof. Without keys (tests of the
// dispatcher alone) nothing is signed; StartDispatcher needs keys.
func (d *Dispatcher) sign(in *workflows.RespondInput, sig *workflows.AlertSignal) error {
	if d.cfg.Keys == nil {
		return nil
	}
	if sig != nil {
		if err := workflows.SignAlert(d.cfg.Keys, in.IncidentID, sig); err != nil {
			return fmt.Errorf("dispatch: sign alert signal: %w", err)
		}
	}
	if err := workflows.SignStart(d.cfg.Keys, in, time.Now()); err != nil {
		return fmt.Errorf("dispatch: sign workflow input: %w", err)
	}
	return nil
}

// workflowName is the workflow a playbook runs: its own, or Respond.
func workflowName(spec playbooks.Spec) string {
	if spec.Workflow == "" {
		return workflows.RespondName
	}
	return spec.Workflow
}

// searchValues are the search attributes an incident starts with.
func searchValues(spec playbooks.Spec, a alert.Alert, severity alert.Severity) map[temporal.SearchAttributeKeyKeyword]string {
	return map[temporal.SearchAttributeKeyKeyword]string{
		workflows.SearchPlaybook:        spec.Name,
		workflows.SearchPlaybookVersion: spec.Version,
		workflows.SearchSeverity:        severity.String(),
		workflows.SearchNamespace:       a.Kubernetes.Namespace,
		workflows.SearchPod:             a.Kubernetes.Pod,
		workflows.SearchCluster:         a.Cluster,
		workflows.SearchStatus:          workflows.StatusResponding,
	}
}

func searchAttributes(dc converter.DataConverter, spec playbooks.Spec, a alert.Alert, severity alert.Severity) (*commonpb.SearchAttributes, error) {
	values := searchValues(spec, a, severity)
	fields := make(map[string]*commonpb.Payload, len(values))
	for k, v := range values {
		if v == "" {
			continue
		}
		p, err := dc.ToPayload(v)
		if err != nil {
			return nil, fmt.Errorf("dispatch: encode search attribute %s: %w", k.GetName(), err)
		}
		fields[k.GetName()] = p
	}
	return &commonpb.SearchAttributes{IndexedFields: fields}, nil
}

// typedSearchAttributes are searchAttributes for the SDK's start.
func typedSearchAttributes(spec playbooks.Spec, a alert.Alert, severity alert.Severity) temporal.SearchAttributes {
	var updates []temporal.SearchAttributeUpdate
	for k, v := range searchValues(spec, a, severity) {
		if v != "" {
			updates = append(updates, k.ValueSet(v))
		}
	}
	return temporal.NewSearchAttributes(updates...)
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
